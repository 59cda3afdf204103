"""FitNet: regress the student's hint map onto the teacher's (features[2], CRD hint_layer=2)."""

from __future__ import annotations

import torch

from sakd.distillers import functional as L
from sakd.distillers.adapters import ConvReg
from sakd.distillers.base import resolve_spots
from sakd.distillers.factory import register_distiller
from sakd.distillers.kinds import ElementwiseDistiller


@register_distiller("fitnet")
class FitNet(ElementwiseDistiller):
    """MSE between ConvReg(f_s) and f_t at the hint layer (features[2]; beta 1 per Table II).

    The regressor (with BatchNorm) runs on the whole batch and only its loss is gated: no
    boolean indexing, at the price of batch statistics that include unselected samples (the
    authors' code runs it on the selected sub-batch).
    """

    spot_rule = "hint"
    default_beta = 1.0
    needs_maps = True

    def __init__(self, spots: list[int], regressor: ConvReg) -> None:
        super().__init__(spots)
        self.regressor = regressor

    @classmethod
    def from_features(cls, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor]) -> FitNet:
        spots = resolve_spots(cls.spot_rule, len(feats_s))
        return cls(spots, ConvReg(feats_s[spots[0]].shape, feats_t[spots[0]].shape))

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return L.fitnet_per_sample(self.regressor(f_s), f_t)
