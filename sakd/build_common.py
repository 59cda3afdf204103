"""What the pretraining and the distillation builders share: the start of a run (seeding, data
loaders, networks placed on the device), an architecture's optimiser and its schedule, and the
sakd.train.job.TrainingJob both return (evaluation and the checkpoint's metadata of the network
trained).

Split from sakd.build so that pretraining (sakd.build_pretrain) imports no distiller or spot
code: editing a distiller re-runs no teacher's pretraining (dvc.yaml's deps).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sakd.data import DatasetInfo, SplitLoaders, build_split_loaders
from sakd.models.normalise import NORMALISATION_KEY, normalisation_record
from sakd.schema import StageParams
from sakd.schema.sections import OptimizerRecipe
from sakd.train import distributed
from sakd.train.evaluate import evaluate
from sakd.train.job import TrainingJob
from sakd.train.optimizers import OPTIMIZERS, lr_schedule
from sakd.train.runtime import place_model, seed_everything

Schedulers = dict[str, torch.optim.lr_scheduler.LRScheduler]


def evaluation(model: nn.Module, loader: Any, autocast: bool) -> Callable[[], dict[str, float]]:
    """Top-1/top-5 of `model` on `loader`, as the loop calls it (validation after every epoch;
    the test split once, after the last: the reported number, never used to choose)."""
    return functools.partial(evaluate, model, loader, autocast=autocast)


def run_metadata(arch: str, dataset: str, info: DatasetInfo) -> dict[str, Any]:
    """What every checkpoint records of its network: enough to load and serve it."""
    return {"arch": arch, "num_classes": info.num_classes, "dataset": dataset,
            NORMALISATION_KEY: normalisation_record(info.mean, info.std)}


def training_job(params: StageParams, loaders: SplitLoaders, model: nn.Module, arch: str,
                 autocast: bool, metadata: Mapping[str, Any] | None = None,
                 **parts: Any) -> TrainingJob:
    """The job either builder returns around `model` (the network trained, recorded as `arch`
    with `metadata`): it trains on the train split, is validated after every epoch and tested
    once after the last. `parts` are the builder's own (step, epochs, optimisers, hooks)."""
    return TrainingJob(
        train_loader=loaders.train, evaluate=evaluation(model, loaders.val, autocast),
        test=evaluation(model, loaders.test, autocast), model=model, data=loaders,
        metadata={**run_metadata(arch, params.data.dataset, loaders.info), **(metadata or {})},
        **parts,
    )


def prepare(params: StageParams, data_root: Path, device: torch.device, batch_size: int,
            seed: int, *networks: Callable[[int], nn.Module]) -> tuple[SplitLoaders,
                                                                      list[nn.Module]]:
    """How every run starts: seeded, its data split into loaders, and each of `networks` (a
    function of the dataset's class count) made in turn after the seeding, so their initial
    weights are the seed's, and placed on the device (memory format, compile, sync BN)."""
    data, rt = params.data, params.runtime
    seed_everything(seed, rt.deterministic)
    loaders = build_split_loaders(  # a captured step takes full batches only (static shapes)
        data.dataset, data_root, batch_size=batch_size, device=device, seed=seed,
        val_fraction=data.val_fraction, val_seed=data.split_seed,
        num_workers=data.workers, channels_last=rt.channels_last, drop_last=rt.capture,
        rank=distributed.rank(), world_size=distributed.world_size(),
        **data.dataset_options(),
    )
    return loaders, [
        place_model(distributed.sync_batchnorm(make(loaders.info.num_classes), device), device,
                    channels_last=rt.channels_last, compile=rt.compile)  # sync BN: CUDA DDP only
        for make in networks
    ]


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` in a torchrun launch (itself otherwise): rank 0's
    weights are broadcast, gradients averaged during backward."""
    if not distributed.active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def make_optimizer(recipe: OptimizerRecipe, params: list[nn.Parameter], lr_scale: float = 1.0,
                   weight_decay: float | None = None, **impl: bool) -> torch.optim.Optimizer:
    """`recipe`'s optimiser over `params`, at lr x `lr_scale` and `weight_decay` when given
    (the router's); `impl`: fused or foreach steps (sakd.train.runtime)."""
    decay = recipe.weight_decay if weight_decay is None else weight_decay
    return OPTIMIZERS.create(recipe.name, params, recipe.lr * lr_scale, recipe.momentum, decay,
                             **impl)


def optimizer_and_schedule(
    recipe: OptimizerRecipe, params: list[nn.Parameter], milestones: Sequence[int], decay: float,
    **impl: bool,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """`recipe`'s optimiser over `params` and its per-epoch schedule (warm-up, then x `decay`
    at each milestone); `impl`: fused or foreach steps (sakd.train.runtime)."""
    optimizer = make_optimizer(recipe, params, **impl)
    return optimizer, lr_schedule(optimizer, milestones, decay, recipe.warmup_epochs)
