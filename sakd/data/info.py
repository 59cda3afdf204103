"""What a dataset is (classes, input size, statistics) and how its training images are augmented.

Augmentation is declared as data (an `AugmentSpec` in each registry entry) so the loaders need no
per-dataset branches and params.yaml can override single fields (e.g. the digits padding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sakd.data.errors import DatasetOptionError


@dataclass(frozen=True)
class AugmentSpec:
    """Training-time augmentation; evaluation never augments.

    pad/random_crop/flip drive the on-device loader (in-memory datasets); random_resized_crop and
    eval_resize drive the torchvision transforms of streamed datasets (ImageNet).
    """

    pad: int = 0  # zero padding on every side before the random crop
    random_crop: bool = False  # random crop back to the input size
    flip: bool = False  # random horizontal flip, p = 0.5
    random_resized_crop: bool = False  # streamed only: RandomResizedCrop(input_size)
    eval_resize: int | None = None  # streamed only: Resize(eval_resize) + CenterCrop(input_size)

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise DatasetOptionError(f"augment pad must be >= 0, got {self.pad}")
        if self.pad > 0 and not self.random_crop:
            raise DatasetOptionError(
                "augment pad > 0 needs random_crop=True (it only feeds the crop)"
            )

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> AugmentSpec:
        """A copy with some fields replaced; unknown names are rejected, listing the valid ones."""
        if not overrides:
            return self
        valid = [f.name for f in fields(self)]
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            names = ", ".join(valid)
            raise DatasetOptionError(f"unknown augment option(s) {unknown}; valid: {names}")
        return replace(self, **dict(overrides))


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a registered dataset."""

    name: str
    num_classes: int
    input_size: int  # images are input_size x input_size after the loader
    mean: tuple[float, float, float]  # per channel, on the 0..1 scale
    std: tuple[float, float, float]
    in_memory: bool  # True: uint8 tensors in a .pt, served by DeviceLoader; False: streamed files
    augment: AugmentSpec
    channels: int = 3
    description: str = ""
