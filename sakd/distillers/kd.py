"""KD (Hinton): the logit loss every run adds at the logit spot, and the plain-KD method.

The loss is applied by the training step at the logit spot for every method (gated by the
logit column of the mask), so the `kd` distiller itself has no feature spot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.base import Distiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import gated_mean
from sakd.distillers.target import teacher_target


def kd_per_sample(logits_s: torch.Tensor, logits_t: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) per sample, shape [B]."""
    log_p_s = F.log_softmax(logits_s / T, dim=1)
    log_p_t = F.log_softmax(teacher_target(logits_t) / T, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1) * (T * T)


def kd(logits_s: torch.Tensor, logits_t: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """L = T^2 / B * sum_i KL(p_t,i || p_s,i), p = softmax(z / T) (RepDistiller DistillKL)."""
    return kd_per_sample(logits_s, logits_t, T).mean()


def kd_masked(
    logits_s: torch.Tensor, logits_t: torch.Tensor, gate: torch.Tensor | None, T: float = 4.0
) -> torch.Tensor:
    """Gated KD at the logit spot: sum_i gate_i * KD_i / B."""
    return gated_mean(kd_per_sample(logits_s, logits_t, T), gate)


@register_distiller("kd")
class KD(Distiller):
    """Plain KD: no feature spot. The logit KL (`kd_per_sample`) is added outside the
    distiller for every method, so this distiller's loss vector is empty."""

    spot_rule = "none"
    default_beta = 0.0
