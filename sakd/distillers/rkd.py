"""RKD: relational KD, distance- and angle-wise relations of the pooled embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.base import RelationalDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import safe_denominator
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples

PDIST_EPS = 1e-12


def _pdist(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix with a zero diagonal (squared distances clamped at 1e-12)."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(PDIST_EPS).sqrt()
    return d * (1 - torch.eye(e.shape[0], device=e.device, dtype=e.dtype))


def _angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at vertex i between j and k: [i, j, k] = <u(e_j - e_i), u(e_k - e_i)>."""
    u = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)
    return torch.bmm(u, u.transpose(1, 2))


def _mean_normalised(d: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """d / mean of the off-diagonal distances inside the subset (masked entries become 0)."""
    mean = (d * pairs).sum() / pairs.sum().clamp_min(1)
    return d * pairs / safe_denominator(mean)


def rkd_masked(
    e_s: torch.Tensor,
    e_t: torch.Tensor,
    gate: torch.Tensor | None,
    w_dist: float = 25.0,
    w_angle: float = 50.0,
) -> torch.Tensor:
    """RKD on the selected subset, times n/B (see `rkd`)."""
    s, t = flatten_samples(e_s), flatten_samples(teacher_target(e_t))
    batch = s.shape[0]
    off_diagonal = 1 - torch.eye(batch, device=s.device, dtype=s.dtype)
    g = torch.ones(batch, device=s.device, dtype=s.dtype) if gate is None else gate.to(s.dtype)
    pairs = g[:, None] * g[None, :] * off_diagonal
    triples = g[:, None, None] * g[None, :, None] * g[None, None, :]
    n = g.sum().clamp_min(1)

    dist = F.smooth_l1_loss(
        _mean_normalised(_pdist(s), pairs), _mean_normalised(_pdist(t), pairs), reduction="none"
    ).sum()
    angle = (F.smooth_l1_loss(_angles(s), _angles(t), reduction="none") * triples).sum()
    # subset means: dist / n^2 and angle / n^3; times n / B for the gate
    return (w_dist * dist / n + w_angle * angle / (n * n)) / batch


def rkd(
    e_s: torch.Tensor, e_t: torch.Tensor, w_dist: float = 25.0, w_angle: float = 50.0
) -> torch.Tensor:
    """L = w_d * mean smoothL1(psi_D(s), psi_D(t)) + w_a * mean smoothL1(psi_A(s), psi_A(t)).

    psi_D: pairwise distances divided by their mean over off-diagonal pairs, averaged over all
    B^2 entries; psi_A: cosines of the angle e_j - e_i, e_k - e_i, averaged over all B^3
    triples. Weights 25 and 50 (RepDistiller `RKDLoss`).
    """
    return rkd_masked(e_s, e_t, None, w_dist, w_angle)


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
        self, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return rkd_masked(f_s, f_t, gate, self.w_dist, self.w_angle)
