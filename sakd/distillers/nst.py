"""NST: neuron selectivity transfer, a polynomial-kernel MMD between channel maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.base import ElementwiseDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.target import teacher_target
from sakd.layers import match_spatial


def _poly_kernel_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean_{c,c'} (a_c . b_c')^2 per sample for a [B, Ca, HW], b [B, Cb, HW]."""
    return torch.bmm(a, b.transpose(1, 2)).pow(2).mean((1, 2))


def nst_per_sample(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD with the kernel k(x, y) = (x.y)^2 between channel maps, per sample [B]."""
    f_s, f_t = match_spatial(f_s, teacher_target(f_t))
    s = F.normalize(f_s.reshape(f_s.shape[0], f_s.shape[1], -1), dim=2)
    t = F.normalize(f_t.reshape(f_t.shape[0], f_t.shape[1], -1), dim=2)
    return _poly_kernel_mean(t, t) + _poly_kernel_mean(s, s) - 2 * _poly_kernel_mean(s, t)


def nst(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = mean k(t,t) + mean k(s,s) - 2 mean k(s,t), k(x,y) = (x.y)^2 over L2-normalised
    channel maps (RepDistiller NSTLoss, polynomial kernel, full loss)."""
    return nst_per_sample(f_s, f_t).mean()


@register_distiller("nst")
class NST(ElementwiseDistiller):
    """Neuron Selectivity Transfer (polynomial-kernel MMD, the benchmark's full loss) at every
    intermediate block; larger maps are average-pooled to the smaller."""

    spot_rule = "blocks"
    default_beta = 50.0
    needs_maps = True

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return nst_per_sample(f_s, f_t)
