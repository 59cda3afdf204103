"""VID: variational information distillation, one variational module per spot."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sakd.distillers.base import ElementwiseDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples, match_spatial, require_same_shape


def vid_per_sample(
    pred_mean: torch.Tensor, target: torch.Tensor, pred_var: torch.Tensor
) -> torch.Tensor:
    """Gaussian negative log-likelihood 0.5 * ((mu - t)^2 / var + log var) averaged per sample.

    `pred_var` has one variance per channel (shape [C]); the constant 0.5 log(2 pi) is dropped,
    as in the VID authors' code used by RepDistiller.
    """
    require_same_shape("vid", pred_mean, target)
    var = pred_var.view(1, -1, *([1] * (pred_mean.dim() - 2)))
    nll = 0.5 * ((pred_mean - teacher_target(target)).pow(2) / var + torch.log(var))
    return flatten_samples(nll).mean(1)


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
        f_s, f_t = match_spatial(f_s, f_t)
        return vid_per_sample(self.regressor(f_s), f_t, self.variance())


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
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], *,
        init_pred_var: float = 5.0, eps: float = 1e-5,
    ) -> VID:
        regressors = nn.ModuleList(
            VariationalRegressor(f_s.shape[1], f_t.shape[1], init_pred_var, eps)
            for f_s, f_t in zip(at_s, at_t, strict=True)
        )
        return cls(spots, regressors)

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return self.regressors[k](f_s, f_t)
