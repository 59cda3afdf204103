"""Batched, on-device augmentation and normalisation of uint8 image batches.

The dataset is padded once; a batch's random crops are one advanced index into an unfold view
of its padded images, flips one torch.where on a per-sample mask. No Python loop over samples,
no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def pad_images(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad every image by `pad` pixels on each side (done once for the whole dataset)."""
    return F.pad(images, (pad, pad, pad, pad)) if pad else images


def crop_and_flip(
    padded: torch.Tensor,
    rows: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Images padded[rows], each cut to the size window at (top, left) and mirrored where flip.

    padded: [N,C,Hp,Wp]; rows/top/left: int64 [B]; flip: bool [B] -> [B,C,H,W], same dtype.
    unfold views every window of the batch without copying; one advanced index picks each
    sample's window, and torch.where on the per-sample mask applies the flip.
    """
    height, width = size
    batch = padded.index_select(0, rows)
    windows = batch.unfold(2, height, 1).unfold(3, width, 1)  # [B,C,nH,nW,H,W] view
    crops = windows[torch.arange(rows.shape[0], device=rows.device), :, top, left]  # [B,C,H,W]
    return torch.where(flip[:, None, None, None], crops.flip(-1), crops)


def normaliser(
    mean: Sequence[float], std: Sequence[float], device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) [1,C,1,1] so that x_uint8 * scale + shift = (x / 255 - mean) / std."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std_t), -mean_t / std_t


def normalise(batch: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] -> float32 normalised, in one fused multiply-add."""
    return torch.addcmul(shift, batch.float(), scale)
