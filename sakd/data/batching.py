"""What every loader shares: batch count, epoch bookkeeping and on-device input preparation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from sakd.data.augment import normalise, normaliser

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (x float32, y int64, row index int64)


class EpochBatching:
    """The common part of DeviceLoader and StreamingLoader.

    Iterating takes the current epoch and advances it by one; `set_epoch` makes the next
    iteration replay a given epoch (resume), since order and augmentation depend only on it.
    Batches leave as uint8 images and become model input on the device (`_model_input`).

    Data-parallel runs (`world_size` > 1): `batch_size` is the global batch; every rank walks
    the same seeded order and takes its own consecutive share of each global batch
    (`row_batches`), so the ranks never overlap and together see what one process would. The
    last batch drops its remainder modulo world_size so the shares stay equal.
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
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if batch_size % world_size:
            raise ValueError(
                f"batch size {batch_size} is the global batch of {world_size} processes: it "
                f"must be divisible by {world_size}"
            )
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
        self.rank, self.world_size = rank, world_size
        self.scale, self.shift = normaliser(mean, std, self.device)
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + int(not self.drop_last and rest >= self.world_size)

    def row_batches(self, order: torch.Tensor) -> Iterator[torch.Tensor]:
        """This rank's rows of each global batch of `order` (all rows when single-process)."""
        stop = len(self) * self.batch_size if self.drop_last else order.shape[0]
        for start in range(0, stop, self.batch_size):
            rows = order[start : min(start + self.batch_size, stop)]
            share = rows.shape[0] // self.world_size
            if share:
                yield rows[self.rank * share : (self.rank + 1) * share]

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
