"""KD (Hinton): the logit loss every run adds at the logit spot, and the plain-KD method.

The loss is applied by the training step at the logit spot for every method (gated by the
logit column of the mask), so the `kd` distiller itself has no feature spot. A method that
owns its logit loss (DKD) replaces it there: `logit_loss` picks the one a step uses.
"""

from __future__ import annotations

from collections.abc import Callable

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


LogitLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(logits_s, logits_t, labels) -> the per-sample loss at the logit spot, [B]."""


def logit_loss(distiller: Distiller, T: float) -> LogitLoss:
    """The logit-spot loss of a run with `distiller`: its own (`owns_logit_loss`, DKD), else
    KD at temperature T (which ignores the labels)."""
    if distiller.owns_logit_loss:
        return distiller.logit_per_sample

    def kd_logits(logits_s: torch.Tensor, logits_t: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return kd_per_sample(logits_s, logits_t, T)

    return kd_logits


@register_distiller("kd")
class KD(Distiller):
    """Plain KD: no feature spot. The logit KL (`kd_per_sample`) is added outside the
    distiller for every method, so this distiller's loss vector is empty."""

    spot_rule = "none"
    default_beta = 0.0
