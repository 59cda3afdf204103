"""The policy network (Sec. III-B): one linear layer that decides, per sample, where to route.

Input: the pooled embeddings (features[-1]) of teacher and student, detached and concatenated
in that order (Algorithm 1, line 20), so no gradient of the policy ever reaches either network.
Output: one two-way routing vector per candidate spot (the distiller's spots, then the logits):
logits of shape [B, num_decisions, 2], column `DISTILL` = route through the teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sakd.models.zoo import model_family
from sakd.registry import Registry
from sakd.spots.gumbel import DISTILL

DISTILL_BIAS = 10.0
"""The authors' start for same-family pairs: +10 on every distill logit, i.e. distill
everywhere at first (REFERENCE-NOTES item 3)."""

POLICY_INITS: Registry[None] = Registry("policy init")


@POLICY_INITS.register("neutral")
def _neutral(linear: nn.Linear) -> None:
    """PyTorch's default init: no preference for either path."""


@POLICY_INITS.register("distill")
def _distill(linear: nn.Linear) -> None:
    with torch.no_grad():
        linear.bias.view(-1, 2)[:, DISTILL] += DISTILL_BIAS


AUTO = "auto"
"""The policy_init choice resolved per pair by `resolve_policy_init`."""


def list_policy_inits() -> list[str]:
    return POLICY_INITS.names()


def list_policy_init_choices() -> list[str]:
    """What distill.policy_init accepts: a registered init, or `auto`."""
    return [*POLICY_INITS.names(), AUTO]


AUTHORS_HETEROGENEOUS = frozenset({("resnet32x4", "resnet32")})
"""Same-family pairs the authors' configs still mark heterogeneous (no +10 bias): the 4x-wide
ResNet teacher of the plain-width student (REFERENCE-NOTES, "Pairs with homo = False")."""


def resolve_policy_init(init: str, teacher_arch: str | None, student_arch: str | None) -> str:
    """`auto` -> the authors' per-pair choice: `distill` (+10) on homogeneous pairs (same zoo
    family, not in AUTHORS_HETEROGENEOUS), else `neutral`. Other names pass through."""
    if init != AUTO:
        return init
    if teacher_arch is None or student_arch is None:
        raise ValueError("distill.policy_init 'auto' needs the teacher's and the student's "
                         "architecture names (networks made by sakd.models.create_model carry "
                         "them as `.arch`); use 'neutral' or 'distill' for other networks")
    same_family = model_family(teacher_arch) == model_family(student_arch)
    homogeneous = same_family and (teacher_arch, student_arch) not in AUTHORS_HETEROGENEOUS
    return "distill" if homogeneous else "neutral"


class PolicyNet(nn.Module):
    """Linear(C_t + C_s -> 2 * num_decisions) on [teacher embedding, student embedding]."""

    def __init__(
        self, teacher_dim: int, student_dim: int, num_decisions: int, init: str = "neutral"
    ) -> None:
        super().__init__()
        initialise: Callable[[nn.Linear], None] = POLICY_INITS.get(init)
        if num_decisions < 1:
            raise ValueError(f"num_decisions must be >= 1 (the logit spot), got {num_decisions}")
        self.num_decisions = num_decisions
        self.linear = nn.Linear(teacher_dim + student_dim, 2 * num_decisions)
        initialise(self.linear)

    def forward(self, embedding_t: torch.Tensor, embedding_s: torch.Tensor) -> torch.Tensor:
        """Routing logits [B, num_decisions, 2]; the inputs are detached here."""
        h = torch.cat((embedding_t.detach().flatten(1), embedding_s.detach().flatten(1)), dim=1)
        return self.linear(h).view(h.shape[0], self.num_decisions, 2)
