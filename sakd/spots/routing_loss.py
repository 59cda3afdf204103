"""The routing loss that trains the policy and the adapters (Eq. 7, beta3 term).

- paper (default): beta3 * CE(routed output, y) (Algorithm 1, line 46).
- reference: the authors' code (REFERENCE-NOTES item 7):
      beta3 * (scale * CE(routed output, y) + max(0, B/2 - sum_b w_logit[b]))
  with scale = gamma when the routed CE is above the student's own CE (its train-mode
  forward, detached), 1/gamma when below, 1 when equal. The hinge is in samples, not a
  fraction: it pushes at least half the batch to take the teacher's logits. The code has no
  beta3 (it is 1 there); we weight the whole term by it as Eq. 7 does. gamma = 1 gives
  CE + hinge.
All of it is computed on the device: no host sync for the comparison.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sakd.registry import Registry

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, float], torch.Tensor]
"""(CE of the routed output, w_logit, student_ce, beta3, gamma) -> the weighted loss."""


class RoutingLoss:
    """A routing loss: CE(routed output, y), then its objective. Every loss is called as

        loss(routed, target, w_logit, student_ce, beta3=1.0, gamma=1.0)

    with `w_logit` [B] the logit-spot decisions and `student_ce` the student's own CE.
    """

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.__doc__ = objective.__doc__

    def __call__(
        self,
        routed: torch.Tensor,
        target: torch.Tensor,
        w_logit: torch.Tensor,
        student_ce: torch.Tensor,
        beta3: float = 1.0,
        gamma: float = 1.0,
    ) -> torch.Tensor:
        ce = F.cross_entropy(routed, target)
        return self.objective(ce, w_logit, student_ce, beta3, gamma)


ROUTING_LOSSES: Registry[torch.Tensor] = Registry("routing loss")


def _paper(ce: torch.Tensor, w_logit, student_ce, beta3: float, gamma: float) -> torch.Tensor:
    """beta3 * CE(routed, target); w_logit, student_ce and gamma are unused."""
    return beta3 * ce


def _reference(ce: torch.Tensor, w_logit, student_ce, beta3: float, gamma: float) -> torch.Tensor:
    """The authors' gamma-scaled CE plus the half-batch hinge (see the module docstring)."""
    baseline = student_ce.detach()
    ce_now = ce.detach()
    one = torch.ones_like(ce_now)
    scale = torch.where(ce_now < baseline, one / gamma, one)
    scale = torch.where(ce_now > baseline, one * gamma, scale)
    hinge = torch.relu(w_logit.shape[0] / 2 - w_logit.sum())
    return beta3 * (scale * ce + hinge)


def _cotrained(ce: torch.Tensor, w_logit, student_ce, beta3: float, gamma: float) -> torch.Tensor:
    """The authors' variant when the teacher is trained too: beta3 * gamma * CE(routed, y)."""
    return beta3 * gamma * ce


paper_routing_loss = ROUTING_LOSSES.register("paper")(RoutingLoss(_paper))
reference_routing_loss = ROUTING_LOSSES.register("reference")(RoutingLoss(_reference))
reference_cotrained_routing_loss = RoutingLoss(_cotrained)


def list_routing_losses() -> list[str]:
    return ROUTING_LOSSES.names()


def get_routing_loss(name: str, teacher_trainable: bool = False) -> RoutingLoss:
    """The routing loss function by name (UnknownNameError lists the valid ones).

    `reference` follows the authors' code per teacher mode: a trained teacher (Table VIII)
    gets their plain gamma-scaled CE.
    """
    loss = ROUTING_LOSSES.get(name)
    if loss is reference_routing_loss and teacher_trainable:
        return reference_cotrained_routing_loss
    return loss
