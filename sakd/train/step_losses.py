"""Eq. 7's terms and weights for one run, resolved once by the builder (sakd.build).

The step (sakd.train.distill_step) reads no config and looks nothing up in a registry: the
teacher mode (Table VIII), the routing loss, the teacher loss, the logit loss and every weight
arrive here already chosen, so each rule has one home (the builder) and the step holds only
what it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sakd.spots.routing_loss import RoutingLoss
from sakd.train.teacher_loss import TeacherLoss

LogitLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(student logits, teacher logits, labels) -> per-sample loss [B] (KD, or DKD's own)."""


@dataclass(frozen=True)
class StepLosses:
    """What the student and routing losses are made of (Eq. 7, Algorithm 1 line 46)."""

    logit_loss: LogitLoss  # the logit spot, per sample
    beta1: float  # weight of the gated logit loss
    beta2: float  # weight of the gated distiller (feature spot) losses
    beta3: float  # weight of the routing loss
    gamma: float  # the authors' CE / routing scale (reference losses, trainable teacher)
    routing_loss: RoutingLoss  # already the variant for this teacher mode
    teacher_loss: TeacherLoss
    teacher_trainable: bool  # Table VIII: the teacher is trained with the student

    @property
    def ce_weight(self) -> float:
        """The factor of the CE terms (gamma-weighted only for a trained teacher that asks)."""
        return self.teacher_loss.ce_weight(self.gamma) if self.teacher_trainable else 1.0
