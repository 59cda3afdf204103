"""StreamingLoader: a worker-backed DataLoader with DeviceLoader's interface (for ImageNet).

Workers decode and crop into uint8 tensors; the batch is moved to the device (pinned memory,
non-blocking) and normalised there, a quarter of the bytes of shipping float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from sakd.data.batching import Batch, EpochBatching
from sakd.data.seeding import epoch_generator


class StreamingLoader(EpochBatching):
    """Iterates (x float32 normalised, y int64, index int64) batches on `device`.

    `dataset` items are (uint8 image [3,H,W], label, index). Shuffle order and worker seeds come
    from a generator seeded by (seed, epoch); iterating advances the epoch, set_epoch resumes.
    With world_size > 1 each rank loads only its share of every global batch.
    """

    def __init__(
        self,
        dataset: Dataset,
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        num_workers: int = 4,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            num_samples=len(labels), batch_size=batch_size, device=device, train=train,
            mean=mean, std=std, seed=seed, drop_last=drop_last, channels_last=channels_last,
            rank=rank, world_size=world_size,
        )
        self.dataset = dataset
        self.labels = labels.to(self.device)  # all dataset labels (CRD draws negatives by class)
        self.num_workers = num_workers

    def _loader(self, epoch: int) -> DataLoader:
        if self.world_size > 1:  # this rank's share of each global batch, same order on all
            generator = epoch_generator(self.seed, epoch)
            n = self.num_samples
            order = torch.randperm(n, generator=generator) if self.train else torch.arange(n)
            return DataLoader(
                self.dataset,
                batch_sampler=[rows.tolist() for rows in self.row_batches(order)],
                num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda",
                generator=generator,
            )
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.train,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=epoch_generator(self.seed, epoch),
        )

    def __iter__(self) -> Iterator[Batch]:
        for images, labels, rows in self._loader(self._take_epoch()):
            yield (
                self._model_input(images.to(self.device, non_blocking=True)),
                labels.to(self.device, non_blocking=True),
                rows.to(self.device, non_blocking=True),
            )
