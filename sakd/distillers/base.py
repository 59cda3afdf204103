"""The distiller contract: *what* to distill at which feature spots (never *where*: see spots/).

A distiller owns the loss of one method (FitNet, AT, ...) at its candidate spots (Table I) and
any learned parts it needs (regressors, embeddings, memory banks). Vanilla KD at the logits is
not part of it: every run adds KD at the logit spot on top (`functional.kd_per_sample`), unless
the method declares its own logit loss (`owns_logit_loss`, DKD), which then replaces KD there.

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

from sakd.distillers.gating import check_mask, gated_mean, spot_gate
from sakd.distillers.target import teacher_target

# How a distiller names its spots (Table I), resolved against the number of features L:
#   "hint"       -> [2]            FitNet's hint layer (CRD benchmark hint_layer=2)
#   "blocks"     -> [1, ..., L-2]  every intermediate block output (AT, VID, NST)
#   "last_block" -> [L-2]          the last block output (SP, FT)
#   "embedding"  -> [L-1]          the pooled embedding (CC, RKD, PKT, CRD)
#   "none"       -> []             plain KD: only the logit spot
#   "blocks_and_embedding" -> [1, ..., L-1]  every block output and the pooled embedding
#                  (ReviewKD: mdistiller fuses the stage outputs and the pooled feature as a
#                  1x1 map; the stem is not distilled)
SPOT_RULES: dict[str, object] = {
    "hint": lambda n: [2],
    "blocks": lambda n: list(range(1, n - 1)),
    "last_block": lambda n: [n - 2],
    "embedding": lambda n: [n - 1],
    "none": lambda n: [],
    "blocks_and_embedding": lambda n: list(range(1, n)),
}


def resolve_spots(rule: str, num_features: int) -> list[int]:
    """Feature indices of a spot rule for a network with `num_features` features."""
    if rule not in SPOT_RULES:
        raise ValueError(f"unknown spot rule {rule!r}; valid: {', '.join(SPOT_RULES)}")
    return SPOT_RULES[rule](num_features)  # type: ignore[operator]


class Distiller(nn.Module):
    """Base class. Subclasses set the class attributes and implement `spot_loss`, usually
    through one of the two kinds below (`per_sample` or `subset_loss`)."""

    name: ClassVar[str]
    spot_rule: ClassVar[str]
    default_beta: ClassVar[float]  # beta2 of Table II
    relational: ClassVar[bool] = False
    needs_index: ClassVar[bool] = False  # CRD: the loader must also yield sample indices
    needs_maps: ClassVar[bool] = False  # its spots must be feature maps [B, C, H, W]
    batch_inputs: ClassVar[tuple[str, ...]] = ()  # extra per-batch tensors forward accepts
    owns_logit_loss: ClassVar[bool] = False  # True: `logit_per_sample` replaces KD (DKD)

    def __init__(self, spots: list[int]) -> None:
        super().__init__()
        self.spots = list(spots)

    @classmethod
    def from_features(
        cls, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor], **options
    ) -> Distiller:
        """Build from example feature lists of a probe forward (shapes are read off them).

        Default: resolve the spots and hand the example features at them to `from_spots`.
        """
        spots = resolve_spots(cls.spot_rule, len(feats_s))
        return cls.from_spots(
            spots, [feats_s[i] for i in spots], [feats_t[i] for i in spots], **options
        )

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], **options
    ) -> Distiller:
        """Build from the example features at the spots (`at_s[k]` is feature `spots[k]`).

        Default: pass the options to `__init__` (its keyword-only arguments are the method's
        options). Methods with learned parts override this and size them off `at_s`/`at_t`;
        their keyword-only arguments here are then the options.
        """
        return cls(spots, **options)

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
        **inputs: torch.Tensor,
    ) -> torch.Tensor:
        """Per-spot gated losses, shape [len(self.spots)] (see the module docstring).

        The one loop over spots of every method: the checks, the teacher detach, the gate of
        each spot and the stacking live here; a method only writes `spot_loss` (and
        `spot_students` when it mixes spots first, as ReviewKD). `index` (the
        dataset indices of the batch) and `inputs` (the names in `batch_inputs`) are passed on
        to `spot_loss` for the methods that need them (CRD).
        """
        mask = self.checked_mask(feats_s, feats_t, mask)
        self.check_inputs(index, inputs)
        extra = dict(inputs, index=index) if self.needs_index else inputs
        students = self.spot_students(feats_s, feats_t)
        losses = [
            self.spot_loss(k, students[k], teacher_target(feats_t[i]), spot_gate(mask, k), **extra)
            for k, i in enumerate(self.spots)
        ]
        return self.stack_losses(losses, feats_s[-1])

    def spot_students(
        self, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The student side of each spot's loss, in `self.spots` order: the student's features
        there; a method that mixes spots before its losses (ReviewKD's fusion) overrides this."""
        return [feats_s[i] for i in self.spots]

    def check_inputs(self, index: torch.Tensor | None, inputs: dict[str, torch.Tensor]) -> None:
        """Fail early on a missing `index` (needs_index) or a per-batch input the method lacks."""
        if self.needs_index and index is None:
            raise ValueError(f"{self.name} needs index=<dataset indices of the batch> (its "
                             "memory bank has one row per training sample)")
        unknown = sorted(set(inputs) - set(self.batch_inputs))
        if unknown:
            accepted = ", ".join(self.batch_inputs) or "none"
            raise ValueError(f"{self.name}: unknown forward input(s) {', '.join(unknown)}; "
                             f"it accepts: {accepted}")

    def spot_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        """Gated loss at the k-th spot of `self.spots` (f_t detached; gate None = all)."""
        raise NotImplementedError(f"{type(self).__name__} must implement spot_loss")

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters trained by the student's optimiser (learned parts of the method)."""
        return (p for p in self.parameters() if p.requires_grad)

    def prepare(self, teacher: nn.Module, batches: Iterable[torch.Tensor]) -> None:
        """Optional phase before distillation (FT pretrains its paraphraser). Default: nothing."""
        return None

    def start_epoch(self, epoch: int) -> None:
        """Per-epoch state of the method (DKD's and ReviewKD's warm-ups), set at the start of
        every epoch (counted from 0), also the first epoch of a resumed run. Default: nothing."""
        return None

    def logit_per_sample(
        self, logits_s: torch.Tensor, logits_t: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """The method's own loss of each sample at the logit spot, [B], used by the training
        step in place of KD when `owns_logit_loss` (gated by the logit column of the mask)."""
        raise NotImplementedError(f"{type(self).__name__} declares no logit loss")


class ElementwiseDistiller(Distiller):
    """A loss that is a batch mean of per-sample terms: gated by sum_i m_i * l_i / B."""

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """Loss of each sample at the k-th spot of `self.spots`, shape [B]."""
        raise NotImplementedError(f"{type(self).__name__} must implement per_sample")

    def spot_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return gated_mean(self.per_sample(k, f_s, f_t), gate)


class RelationalDistiller(Distiller):
    """A loss over pairs (or triples) of samples: computed on the selected subset, times n/B.

    Subclasses implement `subset_loss(f_s, f_t, gate)`; a parameter-free method just names its
    masked loss function: `subset_loss = staticmethod(sp_masked)`.
    """

    relational = True

    def subset_loss(
        self, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        """Loss of the subset selected by `gate` (None: all), times n/B."""
        raise NotImplementedError(f"{type(self).__name__} must implement subset_loss")

    def spot_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return self.subset_loss(f_s, f_t, gate)
