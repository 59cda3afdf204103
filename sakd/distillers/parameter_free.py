"""Methods without learned parts: KD (logits only), AT, NST (element-wise), SP, RKD, PKT
(relational). Each applies one loss of `functional` at its spots (Table I)."""

from __future__ import annotations

import torch

from sakd.distillers import functional as L
from sakd.distillers.base import Distiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.kinds import ElementwiseDistiller, RelationalDistiller


@register_distiller("kd")
class KD(Distiller):
    """Plain KD: no feature spot. The logit KL (functional.kd_per_sample) is added outside the
    distiller for every method, so this distiller's loss vector is empty."""

    spot_rule = "none"
    default_beta = 0.0

    def forward(
        self,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.checked_mask(feats_s, feats_t, mask)
        return self.stack_losses([], feats_s[-1])


@register_distiller("at")
class AT(ElementwiseDistiller):
    """Attention Transfer at every intermediate block (features[1:-1]); `p` is the power of
    the activations (CRD benchmark default 2). Larger maps are average-pooled to the smaller."""

    spot_rule = "blocks"
    default_beta = 1000.0
    needs_maps = True

    def __init__(self, spots: list[int], *, p: int = 2) -> None:
        super().__init__(spots)
        self.p = p

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return L.at_per_sample(f_s, f_t, self.p)


@register_distiller("nst")
class NST(ElementwiseDistiller):
    """Neuron Selectivity Transfer (polynomial-kernel MMD, the benchmark's full loss) at every
    intermediate block; larger maps are average-pooled to the smaller."""

    spot_rule = "blocks"
    default_beta = 50.0
    needs_maps = True

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return L.nst_per_sample(f_s, f_t)


@register_distiller("sp")
class SP(RelationalDistiller):
    """Similarity-Preserving KD at the last block output (features[-2])."""

    spot_rule = "last_block"
    default_beta = 3000.0

    def subset_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return L.sp_masked(f_s, f_t, gate)


@register_distiller("rkd")
class RKD(RelationalDistiller):
    """Relational KD (distance + angle) on the pooled embedding (features[-1]); weights
    25 (distance) and 50 (angle) as in the CRD benchmark."""

    spot_rule = "embedding"
    default_beta = 1.0

    def __init__(self, spots: list[int], *, w_dist: float = 25.0, w_angle: float = 50.0) -> None:
        super().__init__(spots)
        self.w_dist, self.w_angle = w_dist, w_angle

    def subset_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return L.rkd_masked(f_s, f_t, gate, self.w_dist, self.w_angle)


@register_distiller("pkt")
class PKT(RelationalDistiller):
    """Probabilistic Knowledge Transfer (cosine-similarity probabilities, KL) on the pooled
    embedding (features[-1])."""

    spot_rule = "embedding"
    default_beta = 30000.0

    def subset_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return L.pkt_masked(f_s, f_t, gate)
