"""PKT: probabilistic knowledge transfer, a KL between cosine-similarity distributions."""

from __future__ import annotations

import torch

from sakd.distillers.base import RelationalDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import pair_gate, pair_mean_share, safe_denominator
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples

PKT_EPS = 1e-7


def _cosine_probabilities(e: torch.Tensor, pairs: torch.Tensor | None) -> torch.Tensor:
    """Rows of (cos + 1) / 2 over the subset, normalised to sum to 1 (masked rows stay 0)."""
    u = e / (e.norm(dim=1, keepdim=True) + PKT_EPS)
    sim = (u @ u.t() + 1.0) / 2.0
    if pairs is not None:
        sim = sim * pairs
    return sim / safe_denominator(sim.sum(1, keepdim=True))


def pkt_masked(e_s: torch.Tensor, e_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """PKT on the selected subset, times n/B (see `pkt`)."""
    s, t = flatten_samples(e_s), flatten_samples(teacher_target(e_t))
    pairs = pair_gate(None if gate is None else gate.to(s.dtype))
    p_s, p_t = _cosine_probabilities(s, pairs), _cosine_probabilities(t, pairs)
    total = (p_t * torch.log((p_t + PKT_EPS) / (p_s + PKT_EPS))).sum()
    return pair_mean_share(total, gate, s.shape[0])


def pkt(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """L = mean_{i,j} p_t,ij log((p_t,ij + eps) / (p_s,ij + eps)), eps = 1e-7, where
    p_ij = ((cos_ij + 1) / 2) / sum_j ((cos_ij + 1) / 2) (RepDistiller `PKT`; note the mean,
    not the sum, over the B^2 entries)."""
    return pkt_masked(e_s, e_t, None)


@register_distiller("pkt")
class PKT(RelationalDistiller):
    """Probabilistic Knowledge Transfer (cosine-similarity probabilities, KL) on the pooled
    embedding (features[-1])."""

    spot_rule = "embedding"
    default_beta = 30000.0
    subset_loss = staticmethod(pkt_masked)
