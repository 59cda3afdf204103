"""One entry point for training code: train / val / test loaders and info for any dataset."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from sakd.data.api import dataset_source
from sakd.data.batching import Batch
from sakd.data.device_loader import DeviceLoader
from sakd.data.imagenet import labels_of, streamed_transform
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.splits import RowSubset, validation_rows
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
    name: str, root: str | Path, batch_size: int, device: torch.device | str, seed: int = 0,
    **options: Any,
) -> tuple[BatchLoader, BatchLoader, DatasetInfo]:
    """(train, test, info) over a fetched dataset, the whole training set in `train`: the
    loaders of `build_split_loaders` (same keyword options: augmentation, batch sizes, workers,
    data-parallel shard, the dataset's own options) without a validation split."""
    split = build_split_loaders(name, root, batch_size, device, seed, val_fraction=None, **options)
    return split.train, split.test, split.info


@dataclass
class SplitLoaders:
    """train / val (carved from the training data; None without one) / test (official)."""

    train: BatchLoader
    val: BatchLoader | None
    test: BatchLoader
    info: DatasetInfo


def build_split_loaders(
    name: str,
    root: str | Path,
    batch_size: int,
    device: torch.device | str,
    seed: int = 0,
    *,
    val_fraction: float | None,
    val_seed: int = 0,
    eval_batch_size: int | None = None,
    drop_last: bool = False,
    channels_last: bool = False,
    augment: AugmentSpec | Mapping[str, Any] | None = None,
    num_workers: int = 4,
    rank: int = 0,
    world_size: int = 1,
    **dataset_options: Any,
) -> SplitLoaders:
    """Loaders with `val_fraction` of the training data held out for validation (stratified,
    fixed by `val_seed`, which params set from data.split_seed; independent of the training
    `seed`); the test split is untouched. `rank`/`world_size` shard the training loader of a
    data-parallel run (batch_size is then the global batch); every rank evaluates val and test
    whole. `augment` replaces the registry's training augmentation (an AugmentSpec) or overrides
    some of its fields (a mapping, e.g. {"pad": 2}); info has num_classes as found on disk for
    folder datasets."""
    source = dataset_source(name)
    info = source.loader_info(Path(root), **dataset_options)
    spec = _augment_spec(info, augment)
    eval_batch_size = eval_batch_size or batch_size
    common = {
        "device": device,
        "mean": info.mean,
        "std": info.std,
        "seed": seed,
        "channels_last": channels_last,
    }
    train_set = source.load(Path(root), "train", **dataset_options)
    test_set = source.load(Path(root), "test", **dataset_options)
    labels = train_set.labels if info.in_memory else labels_of(train_set)
    rows = validation_rows(labels, val_fraction, val_seed) if val_fraction else None
    if info.in_memory:
        def loader(images, y, train: bool) -> DeviceLoader:
            size = batch_size if train else eval_batch_size
            shard = {"rank": rank, "world_size": world_size} if train else {}
            return DeviceLoader(images, y, size, train=train, augment=spec,
                                drop_last=drop_last and train, **shard, **common)

        images = train_set.images
        if rows is None:
            train, val = loader(images, labels, True), None
        else:
            train = loader(images[rows[0]], labels[rows[0]], True)
            val = loader(images[rows[1]], labels[rows[1]], False)
        return SplitLoaders(train, val, loader(test_set.images, test_set.labels, False), info)

    def stream(dataset, y, train: bool) -> StreamingLoader:
        dataset.transform = streamed_transform(info, spec, train=train)
        shard = {"rank": rank, "world_size": world_size} if train else {}
        return StreamingLoader(dataset, y, batch_size if train else eval_batch_size,
                               train=train, drop_last=drop_last and train,
                               num_workers=num_workers, **shard, **common)

    if rows is None:
        train, val = stream(train_set, labels, True), None
    else:  # a second index of the same files, so val gets the eval transform
        val_base = source.load(Path(root), "train", **dataset_options)
        train = stream(RowSubset(train_set, rows[0]), labels[rows[0]], True)
        val = stream(RowSubset(val_base, rows[1]), labels[rows[1]], False)
    test = stream(test_set, labels_of(test_set), False)
    return SplitLoaders(train, val, test, replace(info, num_classes=len(train_set.classes)))
