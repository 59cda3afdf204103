"""Stratified, seeded splits: digits' train/test split and the validation split carved from any
dataset's training data.

Model selection (tuning, pruning, best epoch) reads the validation split only, so the test split
is read once, for the reported numbers. A seeded numpy generator makes the split independent of
library versions; the same (labels, fraction, seed) always gives the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sakd.data.errors import DatasetOptionError


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
    """(train rows, val rows) of a training set, stratified by class and fixed by `seed`."""
    if not isinstance(val_fraction, int | float) or not 0.0 < val_fraction < 1.0:
        raise DatasetOptionError(f"data.val_fraction must be in (0, 1), got {val_fraction!r}")
    counts = torch.bincount(labels)
    if int(counts[counts > 0].min()) < 2:
        raise DatasetOptionError(
            "data.val_fraction: every class needs >= 2 training images to hold one out for "
            "validation"
        )
    train, val = stratified_split(labels.numpy(), val_fraction, seed)
    return torch.from_numpy(train), torch.from_numpy(val)


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
