"""What every loader shares: batch count, epoch bookkeeping and on-device input preparation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sakd.data.augment import normalise, normaliser

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (x float32, y int64, row index int64)


class EpochBatching:
    """The common part of DeviceLoader and StreamingLoader.

    Iterating takes the current epoch and advances it by one; `set_epoch` makes the next
    iteration replay a given epoch (resume), since order and augmentation depend only on it.
    Batches leave as uint8 images and become model input on the device (`_model_input`).
    """

    def __init__(
        self,
        *,
        num_samples: int,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
        drop_last: bool,
        channels_last: bool,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.device = torch.device(device)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.scale, self.shift = normaliser(mean, std, self.device)
        self.epoch = 0

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _take_epoch(self) -> int:
        epoch = self.epoch
        self.epoch += 1
        return epoch

    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images on the device -> normalised float32, channels_last if asked."""
        x = normalise(images, self.scale, self.shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
