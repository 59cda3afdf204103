"""VID: variational information distillation, one variational module per spot."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sakd.distillers import functional as L
from sakd.distillers.base import resolve_spots
from sakd.distillers.factory import register_distiller
from sakd.distillers.kinds import ElementwiseDistiller


def _conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)


class VariationalRegressor(nn.Module):
    """Predicts a Gaussian over the teacher map: mean by three 1x1 convs (student C -> teacher
    C -> C -> C, as the benchmark's VIDLoss(s, t, t)), one learned variance per channel,
    softplus(log_scale) + eps, initialised to `init_pred_var`."""

    def __init__(
        self, c_in: int, c_out: int, init_pred_var: float = 5.0, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.regressor = nn.Sequential(
            _conv1x1(c_in, c_out), nn.ReLU(), _conv1x1(c_out, c_out), nn.ReLU(),
            _conv1x1(c_out, c_out),
        )
        start = math.log(math.expm1(init_pred_var - eps))  # softplus^-1(init - eps)
        self.log_scale = nn.Parameter(torch.full((c_out,), start))
        self.eps = eps

    def variance(self) -> torch.Tensor:
        return F.softplus(self.log_scale) + self.eps

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """Per-sample negative log-likelihood of f_t, shape [B]."""
        f_s, f_t = L.match_spatial(f_s, f_t)
        return L.vid_per_sample(self.regressor(f_s), f_t, self.variance())


@register_distiller("vid")
class VID(ElementwiseDistiller):
    """VID at every intermediate block (features[1:-1]); larger maps are average-pooled to the
    smaller one before the regressor, as in the CRD benchmark."""

    spot_rule = "blocks"
    default_beta = 1.0
    needs_maps = True

    def __init__(self, spots: list[int], regressors: nn.ModuleList) -> None:
        super().__init__(spots)
        self.regressors = regressors

    @classmethod
    def from_features(
        cls,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        *,
        init_pred_var: float = 5.0,
        eps: float = 1e-5,
    ) -> VID:
        spots = resolve_spots(cls.spot_rule, len(feats_s))
        regressors = nn.ModuleList(
            VariationalRegressor(feats_s[i].shape[1], feats_t[i].shape[1], init_pred_var, eps)
            for i in spots
        )
        return cls(spots, regressors)

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return self.regressors[k](f_s, f_t)
