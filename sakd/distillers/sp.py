"""SP: similarity-preserving KD, on the batch similarity (Gram) matrices of the last block."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.base import RelationalDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import pair_gate, pair_mean_share
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples


def sp_masked(f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """SP on the selected subset, times n/B (see `sp`)."""
    batch = f_s.shape[0]
    pairs = pair_gate(gate)
    s, t = flatten_samples(f_s), flatten_samples(teacher_target(f_t))
    g_s, g_t = s @ s.t(), t @ t.t()
    if pairs is not None:
        g_s, g_t = g_s * pairs.to(g_s.dtype), g_t * pairs.to(g_t.dtype)
    total = (F.normalize(g_t, dim=1) - F.normalize(g_s, dim=1)).pow(2).sum()
    return pair_mean_share(total, gate, batch)


def sp(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = ||norm_rows(G_t) - norm_rows(G_s)||_F^2 / B^2, G = F F^T over flattened features
    (RepDistiller `Similarity`)."""
    return sp_masked(f_s, f_t, None)


@register_distiller("sp")
class SP(RelationalDistiller):
    """Similarity-Preserving KD at the last block output (features[-2])."""

    spot_rule = "last_block"
    default_beta = 3000.0
    subset_loss = staticmethod(sp_masked)
