"""Stratified, seeded splits: digits' train/test split and the validation split carved from any
dataset's training data.

Model selection (tuning, pruning, best epoch) reads the validation split only, so the test split
is read once, for the reported numbers. A seeded numpy generator makes the split independent of
library versions; the same (labels, fraction, seed) always gives the same rows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sakd.data.errors import DatasetOptionError

log = logging.getLogger(__name__)

# Fewer images per class than this in either part: the split is used, with a warning (one
# validation image more or less moves a class's accuracy by 20% or more; a class learnt from
# so few images is mostly noise).
SMALL_PER_CLASS = 5


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept rows, held-out rows): each class contributes round(n_c * fraction) held-out
    rows (at least one, and at least one kept)."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_held = min(max(round(len(rows) * fraction), 1), len(rows) - 1)
        held.append(rows[:n_held])
        kept.append(rows[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def validation_rows(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, val rows) of a training set, stratified by class and fixed by `seed`.

    Every class must keep >= 1 validation image and >= 2 training images as the fraction asks
    (a fraction that asks for none, e.g. 0.0001, or for all, e.g. 0.9995, is refused naming the
    classes and the fractions that work). When the data itself is too small for that (a class
    of 2 images), or a part is merely small, the split is used and a warning names the counts."""
    if not isinstance(val_fraction, int | float) or not 0.0 < val_fraction < 1.0:
        raise DatasetOptionError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}")
    counts = torch.bincount(labels)
    if int(counts[counts > 0].min()) < 2:
        raise DatasetOptionError(
            "data.val_fraction: every class needs >= 2 training images to hold one out for "
            "validation"
        )
    _check_fraction({c: int(n) for c, n in enumerate(counts.tolist()) if n}, val_fraction)
    train, val = stratified_split(labels.numpy(), val_fraction, seed)
    return torch.from_numpy(train), torch.from_numpy(val)


def _check_fraction(counts: dict[int, int], fraction: float) -> None:
    """Refuse a fraction that leaves a class without validation images or with < 2 training
    images (when another fraction would not); warn when a part of a class is small."""
    asked = {c: round(n * fraction) for c, n in counts.items()}
    bad = {c: (n - asked[c], asked[c]) for c, n in counts.items()
           if asked[c] < 1 or n - asked[c] < 2}
    smallest = min(counts.values())
    if bad and smallest >= 3:
        low, high = 1 / smallest, 1 - 2 / smallest
        raise DatasetOptionError(
            f"data.val_fraction {fraction:g} leaves {_classes(bad)} (train/val images); every "
            f"class needs >= 1 validation and >= 2 training images: choose a fraction between "
            f"{low:.4f} and {high:.4f} (classes here have {smallest}..{max(counts.values())} "
            f"images)")
    parts = {c: (n - min(max(asked[c], 1), n - 1), min(max(asked[c], 1), n - 1))
             for c, n in counts.items()}
    small = {c: tv for c, tv in parts.items() if min(tv) < SMALL_PER_CLASS}
    if small:
        log.warning("data.val_fraction %g: small split for %s (train/val images); accuracies "
                    "of so few images are noisy", fraction, _classes(small))


def _classes(split: dict[int, tuple[int, int]], shown: int = 5) -> str:
    """`class 0 1/134, class 3 1/135 and 8 more` (train/val images per class)."""
    items = [f"class {c} {t}/{v}" for c, (t, v) in sorted(split.items())[:shown]]
    more = len(split) - shown
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


class RowSubset(Dataset):
    """Rows of a streamed dataset whose items are (image, label, index), re-indexed 0..n-1 so
    per-sample state (CRD's memory) sees a dense index."""

    def __init__(self, base: Any, rows: torch.Tensor) -> None:
        self.base, self.rows = base, rows.tolist()
        self.classes = base.classes

    @property
    def transform(self) -> Any:
        return self.base.transform

    @transform.setter
    def transform(self, value: Any) -> None:  # the loader sets the base's image transform
        self.base.transform = value

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        image, label, _ = self.base[self.rows[i]]
        return image, label, i
