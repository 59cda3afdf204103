"""What the pretraining and the distillation builders share: the run they return, its data
loaders, the placing of a network, plain SGD and the multi-step decay.

Split from sakd.build so that pretraining (sakd.build_pretrain) imports no distiller or spot
code: editing a distiller re-runs no teacher's pretraining (dvc.yaml's deps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sakd.data import DatasetInfo, SplitLoaders, build_split_loaders
from sakd.schema import StageParams
from sakd.train import distributed
from sakd.train.evaluate import evaluate
from sakd.train.runtime import place_model

Schedulers = dict[str, torch.optim.lr_scheduler.LRScheduler]


@dataclass
class Run:
    """A ready run: what the epoch loop needs, plus the data and nets around it."""

    step: Any  # DistillStep or SupervisedStep
    model: nn.Module  # the network being trained (the student)
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: Schedulers
    train_loader: Any
    val_loader: Any  # held out of the training data: every per-epoch number and selection
    test_loader: Any  # the official test split: read once, after the last epoch
    info: DatasetInfo
    autocast: bool

    def evaluate(self) -> dict[str, float]:
        """Top-1/top-5 of the trained network on the validation split (per epoch)."""
        return evaluate(self.model, self.val_loader, autocast=self.autocast)

    def test(self) -> dict[str, float]:
        """Top-1/top-5 on the test split: the reported number, never used to choose anything."""
        return evaluate(self.model, self.test_loader, autocast=self.autocast)


def split_loaders(params: StageParams, data_root: Path, device: torch.device, batch_size: int,
             seed: int) -> SplitLoaders:
    data = params.data
    return build_split_loaders(  # a captured step takes full batches only (static shapes)
        data.dataset, data_root, batch_size=batch_size, device=device, seed=seed,
        val_fraction=data.val_fraction, val_seed=data.split_seed,
        num_workers=data.workers, channels_last=params.runtime.channels_last,
        drop_last=params.runtime.capture,
        rank=distributed.rank(), world_size=distributed.world_size(),
        **params.data.dataset_options(),
    )


def place(params: StageParams, model: nn.Module, device: torch.device) -> nn.Module:
    rt = params.runtime
    model = distributed.sync_batchnorm(model, device)  # CUDA data-parallel runs only
    return place_model(model, device, channels_last=rt.channels_last, compile=rt.compile)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` in a torchrun launch (itself otherwise): rank 0's
    weights are broadcast, gradients averaged during backward."""
    if not distributed.active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def sgd(params: list[nn.Parameter], lr: float, momentum: float,
        weight_decay: float, **impl: bool) -> torch.optim.SGD:
    """The paper's optimiser; `impl`: fused or foreach steps (sakd.train.runtime)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **impl)


def multistep(optimizer: torch.optim.Optimizer, milestones: Sequence[int],
              decay: float) -> torch.optim.lr_scheduler.MultiStepLR:
    """The paper's learning-rate decay: x `decay` at each milestone epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=decay)
