"""Learned bridges between student and teacher features (CRD benchmark's models/util.py).

ConvReg (FitNet's regressor) maps a student map onto the teacher map's shape; the embeddings
project pooled features of any width to a shared space (CC, CRD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _spatial_bridge(s_c: int, t_c: int, s_hw: tuple[int, int], t_hw: tuple[int, int]) -> nn.Module:
    """The layer of ConvReg that changes channels and size, chosen as the benchmark does."""
    (s_h, s_w), (t_h, t_w) = s_hw, t_hw
    if s_h == 2 * t_h and s_w == 2 * t_w:
        return nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
    if 2 * s_h == t_h and 2 * s_w == t_w:
        return nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
    if s_h >= t_h and s_w >= t_w:  # includes equal sizes: a 1x1 conv
        return nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
    # The benchmark raises here; we resize first, then a 1x1 conv changes the channels.
    return nn.Sequential(nn.Upsample(size=(t_h, t_w), mode="nearest"), nn.Conv2d(s_c, t_c, 1))


class ConvReg(nn.Module):
    """FitNet's convolutional regressor: conv (sized to fit) -> BatchNorm -> ReLU.

    Same sizes: 1x1 conv; student map twice the teacher's: 3x3 stride-2 conv; half: 4x4
    stride-2 transposed conv; larger by another amount: a valid conv whose kernel removes the
    difference. A student map smaller by another factor (the benchmark raises) is upsampled.
    """

    def __init__(
        self, s_shape: torch.Size | tuple[int, ...], t_shape: torch.Size | tuple[int, ...]
    ) -> None:
        super().__init__()
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise ValueError(f"ConvReg needs feature maps [B, C, H, W], got {list(s_shape)} "
                             f"and {list(t_shape)}")
        self.conv = _spatial_bridge(s_shape[1], t_shape[1], tuple(s_shape[2:]), tuple(t_shape[2:]))
        self.bn = nn.BatchNorm2d(t_shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class LinearEmbed(nn.Module):
    """Flatten + Linear (CC's embedding in the benchmark)."""

    def __init__(self, dim_in: int, dim_out: int = 128) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0], -1))


class NormalizedEmbed(LinearEmbed):
    """Flatten + Linear + L2 normalisation (CRD's embedding: scores are cosines / T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(x), dim=1)


def flat_dim(feature: torch.Tensor) -> int:
    """Number of values per sample of an example feature (the input width of an embedding)."""
    return int(feature[0].numel())
