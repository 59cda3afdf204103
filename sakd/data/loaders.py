"""One entry point for training code: (train loader, test loader, info) for any dataset."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch

from sakd.data.api import dataset_source
from sakd.data.batching import Batch
from sakd.data.device_loader import DeviceLoader
from sakd.data.imagenet import labels_of, streamed_transform
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.streaming import StreamingLoader


class BatchLoader(Protocol):
    """What training code iterates: (x float32 normalised, y int64, dataset row int64) on device."""

    num_samples: int
    labels: torch.Tensor

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Batch]: ...
    def set_epoch(self, epoch: int) -> None: ...


def _augment_spec(
    info: DatasetInfo, augment: AugmentSpec | Mapping[str, Any] | None
) -> AugmentSpec:
    if isinstance(augment, AugmentSpec):
        return augment
    return info.augment.with_overrides(augment)


def build_loaders(
    name: str,
    root: str | Path,
    batch_size: int,
    device: torch.device | str,
    seed: int = 0,
    *,
    eval_batch_size: int | None = None,
    drop_last: bool = False,
    channels_last: bool = False,
    augment: AugmentSpec | Mapping[str, Any] | None = None,
    num_workers: int = 4,
    rank: int = 0,
    world_size: int = 1,
    **dataset_options: Any,
) -> tuple[BatchLoader, BatchLoader, DatasetInfo]:
    """Loaders over a fetched dataset. `augment` replaces the registry's training augmentation
    (an AugmentSpec) or overrides some of its fields (a mapping, e.g. {"pad": 2}). The returned
    info has num_classes as found on disk for folder datasets (a class subset is fine).
    `rank`/`world_size` shard the training loader of a data-parallel run (batch_size is then
    the global batch); every rank evaluates the whole test split."""
    source = dataset_source(name)
    info = source.info
    spec = _augment_spec(info, augment)
    eval_batch_size = eval_batch_size or batch_size
    train_set = source.load(Path(root), "train", **dataset_options)
    test_set = source.load(Path(root), "test", **dataset_options)
    common = {
        "device": device,
        "mean": info.mean,
        "std": info.std,
        "seed": seed,
        "channels_last": channels_last,
    }
    if info.in_memory:
        train = DeviceLoader(
            train_set.images,
            train_set.labels,
            batch_size,
            train=True,
            augment=spec,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
            **common,
        )
        test = DeviceLoader(
            test_set.images, test_set.labels, eval_batch_size, train=False, augment=spec, **common
        )
        return train, test, info
    train_set.transform = streamed_transform(info, spec, train=True)
    train = StreamingLoader(
        train_set,
        labels_of(train_set),
        batch_size,
        train=True,
        drop_last=drop_last,
        num_workers=num_workers,
        rank=rank,
        world_size=world_size,
        **common,
    )
    test = StreamingLoader(
        test_set,
        labels_of(test_set),
        eval_batch_size,
        train=False,
        num_workers=num_workers,
        **common,
    )
    return train, test, replace(info, num_classes=len(train_set.classes))
