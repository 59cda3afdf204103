"""What a distillation step would decide for a batch, without training: the Fig. 5-style grid.

Kept apart from the training iteration (sakd.train.distill_step) because it is inspection:
every network in eval mode, no gradient, no optimiser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sakd.spots.gumbel import DISTILL, route_decisions
from sakd.spots.routing import eval_mode

if TYPE_CHECKING:
    from sakd.train.distill_step import DistillStep


@torch.no_grad()
def decide_mask(step: DistillStep, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
    """Distill mask [B, S+1] (`step.spot_names` columns) the strategy would apply to x, every
    net in eval mode: the policy's most likely path, or a Gumbel draw when `sample`."""
    decisions = None
    nets = [m for m in (step.student, step.teacher, step.policy) if m is not None]
    with eval_mode(*nets):
        if step.strategy.uses_policy:
            feats_t, _ = step.teacher(x, return_features=True)
            feats_s, _ = step.student(x, return_features=True)
            logits = step.policy(feats_t[-1], feats_s[-1])
            if sample:
                decisions = route_decisions(logits, step.tau, step.generator)
            else:
                decisions = (logits.argmax(-1) == DISTILL).float()
        return step.strategy.distill_mask(
            decisions, (x.shape[0], step.num_decisions), x.device, step.generator
        )
