"""The pretraining builder: a validated config -> a ready supervised run (teachers, and the
students alone: the paper's S row).

It imports no distiller or spot code (sakd.build, the distillation builder, does), so the
pretrain stage does not depend on them (dvc.yaml).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from sakd.build_common import data_parallel, optimizer_and_schedule, prepare, training_job
from sakd.models import create_model
from sakd.schema import PretrainParams
from sakd.train.job import TrainingJob
from sakd.train.runtime import autocast_enabled, optimizer_kwargs
from sakd.train.supervised import SupervisedStep


def build_supervised_run(params: PretrainParams, data_root: Path, device: torch.device,
                         arch: str) -> TrainingJob:
    """Supervised training of `arch` alone (teachers and the paper's S row); the caller adds
    the checkpoint path and config hash."""
    cfg = params.pretrain
    loaders, (model,) = prepare(params, data_root, device, cfg.batch_size, cfg.seed,
                                partial(create_model, arch))
    autocast = autocast_enabled(params.runtime.autocast, device)
    opt, schedule = optimizer_and_schedule(
        cfg.optimizer_for(arch), list(model.parameters()), cfg.milestones, cfg.lr_decay,
        **optimizer_kwargs(params.runtime.fused_optimizer, device))
    step = SupervisedStep(data_parallel(model, device), opt, autocast=autocast)
    return training_job(
        params, loaders, model, arch, autocast, step=step, epochs=cfg.epochs,
        modules={"model": model}, optimizers={"model": opt}, schedulers={"model": schedule},
    )
