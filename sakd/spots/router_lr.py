"""The router's learning-rate schedule (`distill.router_lr_schedule`).

The router (the policy and the adaptation layers) has its own SGD optimiser, which starts at
student lr x `router_lr_ratio` (sakd.build). Its schedule is a factor on that starting lr per
epoch; `epoch` is 0-based (the number of finished epochs, what an LRScheduler counts):

- `follow_student` (default): x `lr_decay` at each milestone, the student's own multi-step
  decay. The paper, and the authors' `train.py` (their agent optimiser under MultiStepLR).
- `authors_trainable_teacher`: the authors' `train_both.py` (Table VIII), which calls
  `adjust_learning_rate_stage_agent` (helper/util.py) at the start of every epoch. Before their
  epoch 30 (1-based) it sets the router's lr to 1/100 of its starting lr; from epoch 30 on it
  sets lr_decay^k times the starting lr once k >= 1 milestones have passed, and otherwise
  writes nothing, so the 1/100 stays. With milestones 150/180/210 of 240: 1/100 for epochs
  1-150, then 0.1, 0.01, 0.001 (their MultiStepLR on the same optimiser is overwritten every
  time it acts).

A schedule is a pure function `(epoch, milestones, lr_decay) -> factor`; `router_lr_scheduler`
wraps it in the LRScheduler the epoch loop steps and checkpoints.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

import torch

from sakd.registry import Registry

RouterLrFactor = Callable[[int, Sequence[int], float], float]
"""(0-based epoch, milestones, lr_decay) -> factor on the router's starting lr."""

ROUTER_LR_SCHEDULES: Registry[float] = Registry("router lr schedule")

AUTHORS_HOLD_UNTIL_EPOCH = 30
"""train_both.py: before this 1-based epoch the router's lr is always the held fraction."""
AUTHORS_HELD_FRACTION = 0.01
"""train_both.py: lr_agent / 100, held until a milestone has passed (and epoch >= 30)."""


def milestones_passed(epoch: int, milestones: Sequence[int]) -> int:
    """How many decays a multi-step schedule has applied by 0-based `epoch` (sorted milestones)."""
    return bisect_right(list(milestones), epoch)


@ROUTER_LR_SCHEDULES.register("follow_student")
def follow_student(epoch: int, milestones: Sequence[int], lr_decay: float) -> float:
    return lr_decay ** milestones_passed(epoch, milestones)


@ROUTER_LR_SCHEDULES.register("authors_trainable_teacher")
def authors_trainable_teacher(epoch: int, milestones: Sequence[int], lr_decay: float) -> float:
    passed = milestones_passed(epoch, milestones)
    if epoch + 1 < AUTHORS_HOLD_UNTIL_EPOCH or passed == 0:
        return AUTHORS_HELD_FRACTION
    return lr_decay ** passed


def list_router_lr_schedules() -> list[str]:
    """Names accepted by `router_lr_scheduler` (and `distill.router_lr_schedule`)."""
    return ROUTER_LR_SCHEDULES.names()


def router_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, milestones: Sequence[int], lr_decay: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The router optimiser's scheduler, stepped once per epoch like the student's.

    `follow_student` is a MultiStepLR, the very scheduler (and checkpoint state) the router had
    before this option existed; the others are a LambdaLR over their factor function. Unknown
    `name` raises UnknownNameError listing the valid ones.
    """
    factor = ROUTER_LR_SCHEDULES.get(name)
    if factor is follow_student:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=lr_decay)
    points = list(milestones)

    def lr_lambda(epoch: int) -> float:
        return factor(epoch, points, lr_decay)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
