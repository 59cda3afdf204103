"""Adaptation layers H_st / H_ts (Sec. III-A): make one network's feature fit the other's input.

Maps: conv + BN + ReLU, with the conv chosen by the spatial ratio (as the authors' ConvReg):
1x1 when sizes match, 3x3 stride 2 when the source is twice the target, 4x4 stride-2 transposed
conv when it is half; any other ratio resizes first (average pooling down, bilinear up), then
1x1. Vectors (pooled embeddings): a plain Linear.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Resize(nn.Module):
    """Resample a map to a fixed (H, W): adaptive average pooling when shrinking, else bilinear."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h >= self.size[0] and w >= self.size[1]:
            return F.adaptive_avg_pool2d(x, self.size)
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


def _spatial_layer(c_in: int, c_out: int, src_hw: tuple[int, int], dst_hw: tuple[int, int]):
    (sh, sw), (th, tw) = src_hw, dst_hw
    if (sh, sw) == (th, tw):
        return [nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)]
    if (sh, sw) == (2 * th, 2 * tw):
        return [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False)]
    if (2 * sh, 2 * sw) == (th, tw):
        return [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)]
    return [Resize((th, tw)), nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)]


def build_adapter(src_shape: Sequence[int], dst_shape: Sequence[int]) -> nn.Module:
    """An adapter from features shaped `src_shape` to `dst_shape` (batch dim first, any size).

    [B, C, H, W] -> [B, C', H', W']: conv + BN + ReLU; [B, C] -> [B, C']: Linear.
    """
    src, dst = tuple(src_shape), tuple(dst_shape)
    if len(src) == 2 and len(dst) == 2:
        return nn.Linear(src[1], dst[1])
    if len(src) == 4 and len(dst) == 4:
        layers = _spatial_layer(src[1], dst[1], src[2:], dst[2:])
        return nn.Sequential(*layers, nn.BatchNorm2d(dst[1]), nn.ReLU(inplace=True))
    raise ValueError(
        f"cannot adapt a feature of shape {list(src)} to {list(dst)}: both must be maps "
        "[B, C, H, W] or both vectors [B, C]"
    )
