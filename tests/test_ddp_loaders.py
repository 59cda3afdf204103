"""Per-rank shards of the global batch: disjoint, complete, reshuffled each epoch."""

from __future__ import annotations

import pytest
import torch

from sakd.data.device_loader import DeviceLoader
from sakd.data.info import AugmentSpec

N = 37


def loader(rank: int = 0, world: int = 1, batch: int = 8) -> DeviceLoader:
    images = torch.arange(N, dtype=torch.uint8).view(N, 1, 1, 1).expand(N, 3, 4, 4).clone()
    return DeviceLoader(images, torch.arange(N) % 3, batch, "cpu", train=True,
                        augment=AugmentSpec(random_crop=False, flip=False), mean=[0.0] * 3,
                        std=[1.0] * 3, seed=3, rank=rank, world_size=world)


def rows_of(ld: DeviceLoader, epoch: int) -> list[torch.Tensor]:
    ld.set_epoch(epoch)
    return [index for _, _, index in ld]


def test_ranks_split_each_global_batch_without_overlap():
    single = rows_of(loader(), 0)
    shards = [rows_of(loader(rank, 2), 0) for rank in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(loader(0, 2)) == 5  # 4 full + one of 5 (4 used)
    for k, (a, b) in enumerate(zip(*shards, strict=True)):
        assert a.numel() == b.numel()  # equal shares: the gradient mean is the global one
        assert not set(a.tolist()) & set(b.tolist())
        whole = single[k][: a.numel() * 2]  # the last batch drops its odd row
        assert torch.equal(torch.cat([a, b]), whole)


def test_shards_reshuffle_each_epoch_identically_on_every_rank():
    first, second = rows_of(loader(1, 2), 0), rows_of(loader(1, 2), 1)
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert torch.equal(torch.cat(second), torch.cat(rows_of(loader(1, 2), 1)))  # resume


def test_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match="global batch of 3 processes"):
        loader(0, 3, batch=8)
