"""Per-sample gating helpers shared by every distiller (the mask rules of base.py).

A gate is a detached float vector of 0/1 weights, one per sample; None means "all selected".
Everything here is tensor arithmetic: no boolean indexing and no host sync, so an all-zero gate
gives an exact 0 (and zero gradients) and an all-ones gate gives the ungated value.
"""

from __future__ import annotations

import torch


def gated_mean(per_sample: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """Element-wise gating: sum_i gate_i * loss_i / B (the plain batch mean when gate is None)."""
    if gate is None:
        return per_sample.mean()
    return (per_sample * gate.to(per_sample.dtype)).sum() / per_sample.shape[0]


def selected_count(gate: torch.Tensor | None, batch: int) -> torch.Tensor | int:
    """n, the number of selected samples (a device tensor, or the int B when gate is None)."""
    return batch if gate is None else gate.sum()


def pair_gate(gate: torch.Tensor | None) -> torch.Tensor | None:
    """[B, B] weights gate_i * gate_j: which pairs lie inside the selected subset."""
    return None if gate is None else gate[:, None] * gate[None, :]


def check_mask(mask: torch.Tensor | None, batch: int, num_spots: int) -> torch.Tensor | None:
    """Validate a [B, n_spots] gate matrix (shape only: a Python check, no sync) and detach it."""
    if mask is None:
        return None
    if tuple(mask.shape) != (batch, num_spots):
        raise ValueError(
            f"mask must have shape [batch, n_spots] = [{batch}, {num_spots}], "
            f"got {list(mask.shape)}"
        )
    return mask.detach()


def spot_gate(mask: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """Column k of the gate matrix: the gate of spot k (None stays None)."""
    return None if mask is None else mask[:, k]


def safe_denominator(denominator: torch.Tensor) -> torch.Tensor:
    """Replace zeros by ones so masked-out rows divide 0 by 1 instead of making NaN."""
    return torch.where(denominator > 0, denominator, torch.ones_like(denominator))


def pair_mean_share(total: torch.Tensor, gate: torch.Tensor | None, batch: int) -> torch.Tensor:
    """A sum over the n^2 pairs of the selected subset -> its mean times n/B = total / (n B)."""
    n = selected_count(gate, batch)
    n = n.clamp_min(1) if isinstance(n, torch.Tensor) else n
    return total / (n * batch)
