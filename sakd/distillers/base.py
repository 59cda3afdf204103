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

from sakd.distillers.gating import check_mask

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
    needs_maps: ClassVar[bool] = False  # its spots must be feature maps [B, C, H, W]

    def __init__(self, spots: list[int]) -> None:
        super().__init__()
        self.spots = list(spots)

    @classmethod
    def from_features(
        cls, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor], **options
    ) -> Distiller:
        """Build from example feature lists of a probe forward (shapes are read off them).

        Default: resolve the spots and pass the options to `__init__` (its keyword-only
        arguments are the method's options). Methods with learned parts override this.
        """
        return cls(resolve_spots(cls.spot_rule, len(feats_s)), **options)

    def checked_mask(
        self, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Validate the inputs of `forward` (Python-side shape checks only) and detach the mask."""
        if len(feats_s) != len(feats_t):
            raise ValueError(f"{self.name}: student has {len(feats_s)} features, teacher "
                             f"{len(feats_t)}; spots must correspond one to one")
        return check_mask(mask, feats_s[0].shape[0], len(self.spots))

    @staticmethod
    def stack_losses(losses: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """Per-spot losses as one tensor [len(spots)] (empty for a distiller without spots)."""
        return torch.stack(losses) if losses else like.new_zeros(0)

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
