"""Straight-through Gumbel-softmax (Eq. 5-6): a hard routing decision that still has a gradient.

Forward, each two-way routing vector becomes a one-hot sample (Eq. 5: argmax of logits plus
Gumbel noise); backward, the gradient is that of the relaxed softmax at temperature tau (Eq. 6).
So tau never changes *which* path is taken, only how sharply the policy is pushed.

The policy's logits stand in for log a of Eq. 5: they differ from log-softmax(logits) by one
constant per vector, which changes neither the argmax nor the softmax.
"""

from __future__ import annotations

import torch

DISTILL = 0
"""Column of a routing vector meaning "route through the teacher" = distill at that spot
(Algorithm 1, line 22 keeps column 0; the authors' code does the same)."""


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """i.i.d. Gumbel(0, 1) noise shaped like `like`, drawn from `generator` (same device) or
    the global RNG. Uniforms are clamped away from 0 and 1 so the noise is always finite."""
    u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    eps = torch.finfo(like.dtype).eps
    u = u.clamp_(min=eps, max=1.0 - eps)
    return -torch.log(-torch.log(u))


def gumbel_softmax_st(
    logits: torch.Tensor,
    tau: float | torch.Tensor,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One-hot samples along the last dim (exactly 0/1 forward) with the softmax gradient.

    `noise` (Gumbel, same shape) may be given to replay a draw; otherwise it is drawn from
    `generator`. Written as hard + (soft - soft.detach()) so the forward value is exactly the
    one-hot vector, not 1 - s + s up to rounding. A 0-dim tensor `tau` (the captured step's,
    updated in place) is not checked here: reading it would sync with the host.
    """
    if not isinstance(tau, torch.Tensor) and tau <= 0:
        raise ValueError(f"Gumbel-softmax temperature tau must be > 0, got {tau}")
    if noise is None:
        noise = gumbel_noise(logits, generator)
    perturbed = logits + noise
    soft = torch.softmax(perturbed / tau, dim=-1)
    # scatter, not F.one_hot: one_hot range-checks its input with a host sync on some devices
    hard = torch.zeros_like(soft).scatter_(-1, perturbed.argmax(dim=-1, keepdim=True), 1.0)
    return hard + (soft - soft.detach())


def route_decisions(logits: torch.Tensor, tau: float | torch.Tensor,
                    generator: torch.Generator | None = None,
                    noise: torch.Tensor | None = None) -> torch.Tensor:
    """Policy logits [B, D, 2] -> straight-through decision w [B, D]: 1 = teacher (distill)."""
    return gumbel_softmax_st(logits, tau, generator, noise)[..., DISTILL].contiguous()
