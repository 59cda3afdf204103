"""`digits`: scikit-learn's bundled 8x8 handwritten digits, the embedded default (no network).

1,797 greyscale images scaled from 0..16 to 0..255, replicated to 3 channels, split per class
(stratified) by a seeded numpy generator so the split does not depend on the scikit-learn version.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from sakd.data.errors import DatasetOptionError
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.source import InMemorySource
from sakd.data.splits import stratified_split
from sakd.data.tensor_store import save_split, split_path

# Statistics of the default train split (seed 0, test_fraction 0.25), 0..1 scale.
DIGITS_MEAN = 0.3057
DIGITS_STD = 0.3760


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 [N,3,8,8] (0..255) and int64 labels."""
    from sklearn.datasets import load_digits  # only needed at fetch time

    bunch = load_digits()
    grey = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images = np.repeat(grey[:, None], 3, axis=1)
    return images, bunch.target.astype(np.int64)


def check_digits_options(test_fraction: Any, seed: Any) -> None:
    if not isinstance(test_fraction, int | float) or not 0.0 < test_fraction < 1.0:
        raise DatasetOptionError(f"digits test_fraction must be in (0, 1), got {test_fraction!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DatasetOptionError(f"digits split_seed must be a non-negative int, got {seed!r}")


class DigitsSource(InMemorySource):
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        input_size=8,
        mean=(DIGITS_MEAN,) * 3,
        std=(DIGITS_STD,) * 3,
        in_memory=True,
        # digits are not flip-invariant: crop jitter only
        augment=AugmentSpec(pad=1, random_crop=True, flip=False),
        description="scikit-learn 8x8 digits (1,797 images, 10 classes), embedded",
    )
    content_options: ClassVar[Mapping[str, Any]] = {"test_fraction": 0.25, "split_seed": 0}

    def check_options(self, content: dict[str, Any]) -> None:
        check_digits_options(content["test_fraction"], content["split_seed"])

    def convert(self, folder: Path, content: dict[str, Any], fetching: dict[str, Any]) -> dict:
        images, labels = digits_arrays()
        train, test = stratified_split(labels, content["test_fraction"], content["split_seed"])
        classes = [str(d) for d in range(10)]
        for split, rows in (("train", train), ("test", test)):
            save_split(
                split_path(folder, split),
                torch.from_numpy(images[rows]),
                torch.from_numpy(labels[rows]),
                classes,
            )
        return {"source": "sklearn.datasets.load_digits"}
