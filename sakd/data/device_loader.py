"""DeviceLoader: the whole uint8 dataset on the training device, batches made there.

Each epoch draws, from a generator seeded by (seed, epoch), a permutation plus per-sample crop
offsets and flip bits for all N rows, and moves them to the device once. Batches are then pure
device indexing: gather (crop+flip), normalise, optional channels_last. A resumed run that calls
set_epoch(e) sees exactly the batches the uninterrupted run saw in epoch e. In a data-parallel
run each rank takes its share of every global batch (EpochBatching.row_batches).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from sakd.data.augment import crop_and_flip, pad_images
from sakd.data.batching import Batch, EpochBatching
from sakd.data.info import AugmentSpec
from sakd.data.seeding import epoch_generator
from sakd.data.tensor_store import check_arrays


@dataclass
class _EpochPlan:
    order: torch.Tensor  # [N] rows in visiting order
    top: torch.Tensor  # [N] crop offsets, indexed by row
    left: torch.Tensor
    flip: torch.Tensor  # [N] bool


class DeviceLoader(EpochBatching):
    """Iterates (x, y, index) batches of an in-memory uint8 dataset, on `device`.

    train=True shuffles and augments per `augment`; train=False keeps dataset order and only
    normalises. Iterating advances the epoch counter by one; call set_epoch to resume.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        augment: AugmentSpec,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_arrays(images, labels, "DeviceLoader")
        super().__init__(
            num_samples=images.shape[0], batch_size=batch_size, device=device, train=train,
            mean=mean, std=std, seed=seed, drop_last=drop_last, channels_last=channels_last,
            rank=rank, world_size=world_size,
        )
        self.augment = augment
        self.image_size = (images.shape[2], images.shape[3])
        self.pad = augment.pad if train and augment.random_crop else 0
        self.images = pad_images(images.to(self.device), self.pad)
        self.labels = labels.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        return self._batches(self._plan(self._take_epoch()))

    def _plan(self, epoch: int) -> _EpochPlan | None:
        if not self.train:
            return None
        n, generator = self.num_samples, epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator)
        offsets = torch.randint(0, 2 * self.pad + 1, (2, n), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        if not self.augment.flip:
            flip = torch.zeros(n, dtype=torch.bool)
        moved = (t.to(self.device) for t in (order, offsets[0], offsets[1], flip))
        return _EpochPlan(*moved)

    def _batches(self, plan: _EpochPlan | None) -> Iterator[Batch]:
        order = torch.arange(self.num_samples, device=self.device) if plan is None else plan.order
        for rows in self.row_batches(order):
            if plan is None:
                images = self.images[rows]
            else:
                images = crop_and_flip(
                    self.images,
                    rows,
                    plan.top[rows],
                    plan.left[rows],
                    plan.flip[rows],
                    self.image_size,
                )
            yield self._model_input(images), self.labels[rows], rows
