"""The distillation builder: a validated config -> a ready run (networks, distiller, strategy,
policy, adapters, optimisers, schedulers, loaders).

The distill stage, the sensitivity trials, `sakd bench` and the tests all build their
distillation runs here, so a run is assembled the same way wherever it comes from; pretraining
is sakd.build_pretrain (no distiller or spot code), their shared parts sakd.build_common.
Nothing here knows of params.yaml paths or MLflow: the caller hands in the data folder, the
device and the teacher network it loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sakd.build_common import Schedulers, make_optimizer, prepare, training_job
from sakd.config import DistillConfig, Params
from sakd.distillers import Distiller, create_distiller, distiller_options
from sakd.distillers.kd import logit_loss
from sakd.models import create_model
from sakd.models.base import SpotNet
from sakd.schema.sections import OptimizerRecipe
from sakd.spots.policy import PolicyNet, resolve_policy_init
from sakd.spots.router_lr import router_lr_scheduler
from sakd.spots.routing import RoutingNetwork, example_features
from sakd.spots.routing_loss import get_routing_loss
from sakd.spots.strategies import create_strategy
from sakd.spots.tau import TauClock
from sakd.train import distributed
from sakd.train.capture import CapturedStep
from sakd.train.distill_step import DistillStep
from sakd.train.job import TrainingJob
from sakd.train.optimizers import lr_schedule
from sakd.train.runtime import autocast_enabled, optimizer_kwargs, unique_parameters
from sakd.train.step_losses import StepLosses
from sakd.train.teacher_loss import TEACHER_TRAINABLE, create_teacher_loss

__all__ = ["Schedulers", "TrainingJob", "build_distill_run", "build_distill_step", "lr_schedulers",
           "step_losses"]


# ---------------------------------------------------------------------------- the SAKD step
def build_distill_step(
    student: SpotNet,
    teacher: SpotNet,
    distiller: Distiller,
    strategy_name: str,
    example_x: torch.Tensor,
    cfg: DistillConfig | None = None,
    *,
    optimizer: OptimizerRecipe | None = None,
    beta2: float | None = None,
    tau: float | None = None,
    steps_per_epoch: int = 1,
    generator: torch.Generator | None = None,
    autocast: bool = False,
    channels_last: bool = False,
    fold_batchnorm: bool = True,
    fused_optimizer: bool = False,
    features: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
) -> DistillStep:
    """A DistillStep for `strategy_name`, with its policy, adapters and optimisers.

    `example_x`: a small batch on the training device (>= 2 samples; only shapes are read) to
    size the policy and adapters. `optimizer` defaults to the config's recipe for the
    student's arch (`optimizer_for`; the router's is the same kind at lr x router_lr_ratio),
    `beta2` to the config's value for the distiller (else its Table II default); `tau` fixes
    the temperature, else cfg.tau's schedule runs over cfg.epochs x `steps_per_epoch`. A
    frozen teacher is put in eval mode with requires_grad off. Place the networks on their
    device and memory format first (the BN-folded views copy conv weights).
    `fused_optimizer`: fused (CUDA) or foreach steps.
    `features`: (student, teacher) features of `example_x` when the caller has them already.
    """
    cfg = cfg or DistillConfig()
    strategy = create_strategy(strategy_name)
    _check_pair(student, teacher, distiller)
    losses = step_losses(cfg, distiller, beta2)
    trainable = losses.teacher_trainable
    teacher.requires_grad_(trainable)
    if not trainable:
        teacher.eval()
    t = cfg.tau
    clock = TauClock.constant(tau) if tau is not None else TauClock.scheduled(
        t.schedule, t.tau0, t.tau_min, t.per, cfg.epochs, steps_per_epoch)
    policy = routing = None
    if strategy.uses_policy:
        init = resolve_policy_init(cfg.policy_init, getattr(teacher, "arch", None),
                                   getattr(student, "arch", None))
        feats_s, feats_t = features or example_features((student, teacher), example_x)
        embed_t, embed_s = feats_t[-1].flatten(1), feats_s[-1].flatten(1)
        policy = PolicyNet(embed_t.shape[1], embed_s.shape[1], len(distiller.spots) + 1,
                           init=init)
        policy.to(device=embed_s.device, dtype=embed_s.dtype)
        routing = RoutingNetwork.from_examples(distiller.spots, feats_s, feats_t, relu=(
            getattr(student, "relu_maps", True), getattr(teacher, "relu_maps", True)))
        if channels_last:
            routing.to(memory_format=torch.channels_last)
    if channels_last:
        distiller.to(memory_format=torch.channels_last)
    opt = optimizer or cfg.optimizer_for(getattr(student, "arch", ""))
    trained = _student_trained(student, distiller, teacher if trainable else None)
    impl = optimizer_kwargs(fused_optimizer, example_x.device)
    optimizers = {"student": make_optimizer(opt, trained, **impl)}
    if strategy.uses_policy:
        optimizers["router"] = make_optimizer(opt, unique_parameters(policy, routing),
                                              cfg.router_lr_ratio, cfg.router_weight_decay, **impl)
    return DistillStep(
        student, teacher, distiller, strategy, losses, optimizers, clock, policy=policy,
        routing=routing, generator=generator, autocast=autocast, fold_batchnorm=fold_batchnorm,
    )


def step_losses(cfg: DistillConfig, distiller: Distiller, beta2: float | None = None) -> StepLosses:
    """Eq. 7's terms for `distiller` under `cfg`: the teacher mode and everything that depends
    on it (the routing loss variant, the CE weight) are decided here, once; `beta2` overrides
    the config's value for the distiller (else its Table II default)."""
    trainable = TEACHER_TRAINABLE[cfg.teacher_trainable]
    routing_loss = get_routing_loss(cfg.routing_loss, trainable)  # this teacher mode's variant
    return StepLosses(
        logit_loss=logit_loss(distiller, cfg.kd_T), beta1=cfg.beta1,
        beta2=cfg.beta2_for(distiller) if beta2 is None else beta2, beta3=cfg.beta3,
        gamma=cfg.gamma_for(distiller.name), routing_loss=routing_loss,
        teacher_loss=create_teacher_loss(cfg.teacher_loss), teacher_trainable=trainable,
    )


def lr_schedulers(optimizers: dict[str, torch.optim.Optimizer], milestones: Sequence[int],
                  decay: float, router_lr_schedule: str = "follow_student",
                  warmup_epochs: int = 0) -> Schedulers:
    """The paper's multi-step decay (x decay at each milestone epoch) for every optimiser,
    the student's after its recipe's `warmup_epochs`; the router's follows
    `router_lr_schedule` (sakd.spots.router_lr: the student's decay, or the authors' Table
    VIII schedule)."""
    return {name: lr_schedule(opt, milestones, decay, warmup_epochs) if name != "router"
            else router_lr_scheduler(router_lr_schedule, opt, milestones, decay)
            for name, opt in optimizers.items()}


def _student_trained(student: SpotNet, distiller: Distiller,
                     teacher: SpotNet | None) -> list[nn.Parameter]:
    """What the student's optimiser trains, each once: the student, the distiller's
    `student_parameters()` (its own choice: a part it keeps fixed is left out, one it shares
    is let in), a trainable teacher; those with requires_grad only."""
    params = [*student.parameters(), *distiller.student_parameters(),
              *(teacher.parameters() if teacher is not None else ())]
    return [p for p in {id(p): p for p in params}.values() if p.requires_grad]


def _check_pair(student: SpotNet, teacher: SpotNet, distiller: Distiller) -> None:
    if student.num_features != teacher.num_features:
        raise ValueError(
            f"teacher has {teacher.num_features} feature spots and student "
            f"{student.num_features}: distillation spots pair block k with block k, so both "
            "networks need the same block structure"
        )
    spots = list(distiller.spots)
    if spots != sorted(set(spots)) or any(not 0 <= k < student.num_features for k in spots):
        raise ValueError(
            f"distiller {type(distiller).__name__} spots {spots} must be increasing feature "
            f"indices in [0, {student.num_features - 1}]"
        )


# ---------------------------------------------------------------------------- whole runs
def build_distill_run(
    params: Params, data_root: Path, device: torch.device,
    teacher: SpotNet | Callable[[int], SpotNet],
    student_arch: str, distiller_name: str, strategy: str, seed: int,
    cfg: DistillConfig | None = None,
) -> TrainingJob:
    """A distillation run of `teacher` -> a fresh `student_arch` (`cfg` overrides
    params.distill: the tuner's trials). `teacher` is a network, or a function of the
    dataset's class count that returns one; it is placed on the device here. The caller adds
    the checkpoint path, the config hash and what it records (sakd.train.job)."""
    cfg = cfg or params.distill
    rt = params.runtime
    autocast = autocast_enabled(rt.autocast, device)
    loaders, (teacher, student) = prepare(params, data_root, device, cfg.batch_size, seed,
                                          _network_of(teacher), partial(create_model, student_arch))
    train_loader = loaders.train
    example_x = next(iter(loaders.val))[0][:2]
    feats_s, feats_t = example_features((student, teacher), example_x)
    distiller = create_distiller(distiller_name, feats_s, feats_t,
                                 **_distiller_kwargs(distiller_name, cfg, train_loader))
    recipe = cfg.optimizer_for(student_arch)
    step = build_distill_step(
        student, teacher, distiller, strategy, example_x, cfg, optimizer=recipe,
        steps_per_epoch=len(train_loader), autocast=autocast, channels_last=rt.channels_last,
        fused_optimizer=rt.fused_optimizer, features=(feats_s, feats_t),
    )
    schedulers = lr_schedulers(step.optimizers, cfg.milestones, cfg.lr_decay,
                               cfg.router_lr_schedule, recipe.warmup_epochs)
    if distributed.share_training(step.modules_to_checkpoint().values(),
                                  step.optimizers.values(), seed):
        # a pre-phase (FT's paraphraser) trains on each rank's share: rank 0's result is then
        # given to all, so every rank distills against one
        step.after_prepare.append(distributed.broadcast_module)
    run_step = CapturedStep(step) if rt.capture else step
    return training_job(
        params, loaders, student, student_arch, autocast,
        {"distiller": distiller_name, "strategy": strategy, "seed": seed,
         "spot_names": step.spot_names},
        step=run_step, epochs=cfg.epochs, modules=step.modules_to_checkpoint(),
        optimizers=step.optimizers, schedulers=schedulers,
        on_epoch_start=lambda epoch: run_step.start_epoch(epoch, train_loader),
        summarize=run_step.epoch_metrics,
    )


def _network_of(teacher: SpotNet | Callable[[int], SpotNet]) -> Callable[[int], SpotNet]:
    """The teacher as a function of the dataset's class count (a network is itself)."""
    return (lambda _: teacher) if isinstance(teacher, nn.Module) else teacher


def _distiller_kwargs(name: str, cfg: DistillConfig, train_loader) -> dict[str, Any]:
    """The distiller's declared options (distill.options.<name>), plus what it reads off the
    training data (CRD's memory size and labels)."""
    available = {
        "num_samples": lambda: train_loader.num_samples,
        "labels": lambda: train_loader.labels,
        **{key: (lambda v=value: v) for key, value in cfg.options_for(name).model_dump().items()},
    }
    return {k: available[k]() for k in distiller_options(name) if k in available}
