"""FitNet: regress the student's hint map onto the teacher's (features[2], CRD hint_layer=2)."""

from __future__ import annotations

import torch

from sakd.distillers.base import ElementwiseDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.target import teacher_target
from sakd.layers import ConvReg, flatten_samples, require_same_shape


def fitnet_per_sample(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample, shape [B] (f_s already regressed to f_t's shape)."""
    require_same_shape("fitnet", f_s, f_t)
    return flatten_samples(f_s - teacher_target(f_t)).pow(2).mean(1)


def fitnet(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = mean over all elements of (r(f_s) - f_t)^2 (RepDistiller HintLoss = nn.MSELoss)."""
    return fitnet_per_sample(f_s, f_t).mean()


@register_distiller("fitnet")
class FitNet(ElementwiseDistiller):
    """MSE between ConvReg(f_s) and f_t at the hint layer (features[2]; beta 1 per Table II).

    The regressor (with BatchNorm) runs on the whole batch and only its loss is gated, so its
    batch statistics include unselected samples, exactly as in the authors' code (which runs it
    on the full batch and indexes the result by the spot's mask afterwards).
    """

    spot_rule = "hint"
    default_beta = 1.0
    needs_maps = True

    def __init__(self, spots: list[int], regressor: ConvReg) -> None:
        super().__init__(spots)
        self.regressor = regressor

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor]
    ) -> FitNet:
        return cls(spots, ConvReg(at_s[0].shape, at_t[0].shape))

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return fitnet_per_sample(self.regressor(f_s), f_t)
