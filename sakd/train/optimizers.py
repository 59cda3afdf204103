"""The optimisers a run may train with, by name, and the per-epoch learning-rate schedule.

SGD with momentum is the paper's (every CNN of the zoo); AdamW is what vision transformers
train with (DeiT), which SGD leaves at chance on small datasets. The schedule is the paper's
multi-step decay, optionally after a linear warm-up (transformers need one).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from sakd.registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
"""name -> (params, lr, momentum, weight_decay, **impl) -> optimiser; `impl`: fused/foreach."""


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float,
         **impl: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **impl)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float,
           **impl: bool) -> torch.optim.Optimizer:
    """Decoupled weight decay, torch's default betas; `momentum` is SGD's and unused here."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **impl)


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def lr_schedule(optimizer: torch.optim.Optimizer, milestones: Sequence[int], decay: float,
                warmup_epochs: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """x `decay` at each milestone epoch (the paper's), after a linear warm-up over the first
    `warmup_epochs` (lr x (epoch + 1) / warmup_epochs, epochs counted from 0). Without a
    warm-up it is torch's MultiStepLR, whose state earlier checkpoints hold."""
    if warmup_epochs <= 0:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=decay)
    points = sorted(milestones)

    def factor(epoch: int) -> float:
        return min(1.0, (epoch + 1) / warmup_epochs) * decay ** bisect_right(points, epoch)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
