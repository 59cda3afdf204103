"""AT: attention transfer at every intermediate block (Zagoruyko & Komodakis)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.base import ElementwiseDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples, match_spatial


def attention_map(f: torch.Tensor, p: int = 2) -> torch.Tensor:
    """a(f) = normalize_L2(mean_c f_c^p), flattened to [B, H*W]."""
    return F.normalize(flatten_samples(f.pow(p).mean(1)), dim=1)


def at_per_sample(f_s: torch.Tensor, f_t: torch.Tensor, p: int = 2) -> torch.Tensor:
    """mean_hw (a(f_s) - a(f_t))^2 per sample, after pooling the larger map to the smaller."""
    f_s, f_t = match_spatial(f_s, teacher_target(f_t))
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean(1)


def at(f_s: torch.Tensor, f_t: torch.Tensor, p: int = 2) -> torch.Tensor:
    """L = mean_{i,hw} (a(f_s)_i - a(f_t)_i)^2, a(f) = normalize(mean_c f_c^p) (one map pair).

    Attention Transfer as in RepDistiller `Attention.at_loss` (squared, channel-averaged,
    L2-normalised maps; squared difference averaged, not the paper's p-norm of the difference).
    """
    return at_per_sample(f_s, f_t, p).mean()


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
        return at_per_sample(f_s, f_t, self.p)
