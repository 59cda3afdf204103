"""The distiller contract: *what* to distill at which feature spots (never *where*: see spots/).

A distiller owns the loss of one method (FitNet, AT, ...) at its candidate spots (Table I) and
any learned parts it needs (regressors, embeddings, memory banks). Vanilla KD at the logits is
not part of it: every run adds KD at the logit spot on top (`functional.kd_per_sample`).

Gating contract (used by every strategy, spots/ never looks inside a distiller):
- `mask` is a detached float tensor of 0/1 with shape [B, len(self.spots)], one column per spot
  in `self.spots` order; None means all ones.
- Element-wise losses: per-sample loss times the mask, averaged over the whole batch B.
- Relational losses (SP, CC, RKD, PKT): the loss of the selected subset times n/B (n selected).
  Computed by masking, with no host sync, so an all-zero column is an exact 0 with no NaN and
  no gradient, and an all-ones column gives exactly the ungated loss.
- forward returns one (unweighted, i.e. before beta2) loss per spot: a tensor [len(spots)].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar

import torch
from torch import nn

# How a distiller names its spots (Table I), resolved against the number of features L:
#   "hint"       -> [2]            FitNet's hint layer (CRD benchmark hint_layer=2)
#   "blocks"     -> [1, ..., L-2]  every intermediate block output (AT, VID, NST)
#   "last_block" -> [L-2]          the last block output (SP, FT)
#   "embedding"  -> [L-1]          the pooled embedding (CC, RKD, PKT, CRD)
#   "none"       -> []             plain KD: only the logit spot
SPOT_RULES: dict[str, object] = {
    "hint": lambda n: [2],
    "blocks": lambda n: list(range(1, n - 1)),
    "last_block": lambda n: [n - 2],
    "embedding": lambda n: [n - 1],
    "none": lambda n: [],
}


def resolve_spots(rule: str, num_features: int) -> list[int]:
    """Feature indices of a spot rule for a network with `num_features` features."""
    if rule not in SPOT_RULES:
        raise ValueError(f"unknown spot rule {rule!r}; valid: {', '.join(SPOT_RULES)}")
    return SPOT_RULES[rule](num_features)  # type: ignore[operator]


class Distiller(nn.Module):
    """Base class. Subclasses set the class attributes and implement `forward`."""

    name: ClassVar[str]
    spot_rule: ClassVar[str]
    default_beta: ClassVar[float]  # beta2 of Table II
    relational: ClassVar[bool] = False
    needs_index: ClassVar[bool] = False  # CRD: the loader must also yield sample indices

    def __init__(self, spots: list[int]) -> None:
        super().__init__()
        self.spots = list(spots)

    def forward(
        self,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-spot gated losses, shape [len(self.spots)] (see the module docstring)."""
        raise NotImplementedError

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters trained by the student's optimiser (learned parts of the method)."""
        return (p for p in self.parameters() if p.requires_grad)

    def prepare(self, teacher: nn.Module, batches: Iterable[torch.Tensor]) -> None:
        """Optional phase before distillation (FT pretrains its paraphraser). Default: nothing."""
        return None
