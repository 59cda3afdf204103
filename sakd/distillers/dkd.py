"""DKD: decoupled knowledge distillation at the logit spot (Zhao et al., CVPR 2022).

KD's KL splits into a target-class term (TCKD: the binary [p_gt, 1 - p_gt] distributions) and
a non-target-class term (NCKD: the distribution over the other classes, renormalised); DKD
weights them freely, alpha * TCKD + beta * NCKD, times T^2. Defaults are mdistiller's CIFAR-100
ones (alpha 1, beta 8, T 4, a linear warm-up of the loss over 20 epochs; CE weight 1, which
the training step already uses). Every probability is taken in the log domain (log-sum-exp
over the non-target logits), so no class is masked with a large finite constant and a
confident teacher never gives log(0).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from sakd.distillers.base import Distiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.options import DistillerOptions
from sakd.distillers.target import teacher_target


def _decoupled_log_probs(
    logits: torch.Tensor, target: torch.Tensor, T: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log [p_gt, 1 - p_gt] [B, 2], log of the renormalised non-target distribution [B, C]
    with 0 at the target class, the target mask [B, C]) of softmax(logits / T)."""
    z = logits / T
    is_target = F.one_hot(target, z.shape[1]).bool()
    lse_all = z.logsumexp(1)
    lse_other = z.masked_fill(is_target, float("-inf")).logsumexp(1)
    z_target = z.gather(1, target[:, None]).squeeze(1)
    log_binary = torch.stack([z_target - lse_all, lse_other - lse_all], dim=1)
    log_other = (z - lse_other[:, None]).masked_fill(is_target, 0.0)
    return log_binary, log_other, is_target


def dkd_per_sample(
    logits_s: torch.Tensor, logits_t: torch.Tensor, target: torch.Tensor,
    alpha: float = 1.0, beta: float = 8.0, T: float = 4.0,
) -> torch.Tensor:
    """T^2 * (alpha * KL(b_t || b_s) + beta * KL(q_t || q_s)) per sample, shape [B]: b the
    binary target/non-target split, q the non-target classes renormalised."""
    if logits_s.shape[1] < 2:
        raise ValueError(f"dkd needs >= 2 classes; logits have shape {list(logits_s.shape)}")
    b_s, q_s, is_target = _decoupled_log_probs(logits_s, target, T)
    b_t, q_t, _ = _decoupled_log_probs(teacher_target(logits_t), target, T)
    tckd = F.kl_div(b_s, b_t, reduction="none", log_target=True).sum(1)
    # the target entry of q is 0 on both sides: its KL term is exactly 0 (no inf, no NaN grad)
    nckd = F.kl_div(q_s, q_t, reduction="none", log_target=True).masked_fill(is_target, 0.0).sum(1)
    return (alpha * tckd + beta * nckd) * (T * T)


def dkd(
    logits_s: torch.Tensor, logits_t: torch.Tensor, target: torch.Tensor,
    alpha: float = 1.0, beta: float = 8.0, T: float = 4.0,
) -> torch.Tensor:
    """L = T^2 / B * sum_i (alpha * TCKD_i + beta * NCKD_i) (mdistiller `dkd_loss`)."""
    return dkd_per_sample(logits_s, logits_t, target, alpha, beta, T).mean()


def warmup_factor(epoch: int, warmup: int) -> float:
    """The loss scale in 0-based `epoch`: min((epoch + 1) / warmup, 1) (mdistiller counts
    epochs from 1: min(epoch / WARMUP, 1)); warmup 0 = no warm-up."""
    return 1.0 if warmup <= 0 else min((epoch + 1) / warmup, 1.0)


@register_distiller("dkd")
class DKD(Distiller):
    """DKD in place of KD at the logit spot: no feature spot; the training step gates
    `logit_per_sample` by the logit column of the mask and weights it by beta1 (1: mdistiller).

    The warm-up scale is a 0-dim buffer set in place each epoch (`start_epoch`), so a captured
    step reads the new value without recompiling; it is not saved (a resumed run sets it)."""

    spot_rule = "none"
    default_beta = 0.0
    owns_logit_loss = True

    class Options(DistillerOptions):
        """params.yaml `distill.options.dkd` (mdistiller's CIFAR-100 defaults)."""

        alpha: Annotated[float, Field(ge=0, le=1e6)] = 1.0  # TCKD weight
        beta: Annotated[float, Field(ge=0, le=1e6)] = 8.0  # NCKD weight
        temperature: Annotated[float, Field(gt=0, le=1e3)] = 4.0
        warmup: Annotated[int, Field(ge=0, le=100_000)] = 20  # epochs of linear warm-up

    def __init__(self, spots: list[int], *, alpha: float = 1.0, beta: float = 8.0,
                 temperature: float = 4.0, warmup: int = 20) -> None:
        super().__init__(spots)
        self.options = self.Options(alpha=alpha, beta=beta, temperature=temperature,
                                    warmup=warmup)
        self.register_buffer("warmup_scale", torch.tensor(warmup_factor(0, warmup)),
                             persistent=False)

    def start_epoch(self, epoch: int) -> None:
        """Set the warm-up scale of 0-based `epoch` (in place: no new tensor, no recompile)."""
        self.warmup_scale.fill_(warmup_factor(epoch, self.options.warmup))

    def logit_per_sample(
        self, logits_s: torch.Tensor, logits_t: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """The warmed-up DKD loss of each sample, shape [B] (the step gates and averages it)."""
        o = self.options
        return dkd_per_sample(logits_s, logits_t, target, o.alpha, o.beta,
                              o.temperature) * self.warmup_scale
