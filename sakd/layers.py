"""Learned and parameter-free bridges between two networks' features: conv regressors, size
adapters, embeddings.

Distillers use them to compare a student feature with a teacher feature (FitNet's ConvReg,
CC/CRD's embeddings, the pooling of AT/NST/VID/FT); the routing network uses `build_adapter`
for its H_st / H_ts layers (Sec. III-A). Both size a conv by the spatial ratio the same way
(`ratio_conv`); they differ only for other ratios, where each keeps its reference's choice.
The model zoo's own blocks live in sakd/models/layers.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Shape = torch.Size | Sequence[int]


# ----------------------------------------------------------------------------- shapes
def flatten_samples(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [B, D]: one row of values per sample."""
    return x.reshape(x.shape[0], -1)


def flat_dim(feature: torch.Tensor) -> int:
    """Number of values per sample of an example feature (the input width of an embedding)."""
    return int(feature[0].numel())


def require_same_shape(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Fail early when a loss that compares values one to one gets mismatched shapes."""
    if a.shape != b.shape:
        raise ValueError(f"{name}: student and teacher shapes differ: {list(a.shape)} vs "
                         f"{list(b.shape)} (apply the method's regressor first)")


# ----------------------------------------------------------------------------- size adapters
def match_spatial(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool the larger map to the smaller size (CRD benchmark's AT/NST/VID/FT).

    The benchmark compares heights only and pools to a square; comparing height and width
    separately is the same on square maps and also handles non-square ones.
    """
    size = (min(f_s.shape[2], f_t.shape[2]), min(f_s.shape[3], f_t.shape[3]))
    if tuple(f_s.shape[2:]) != size:
        f_s = F.adaptive_avg_pool2d(f_s, size)
    if tuple(f_t.shape[2:]) != size:
        f_t = F.adaptive_avg_pool2d(f_t, size)
    return f_s, f_t


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


def ratio_conv(
    c_in: int, c_out: int, src_hw: Sequence[int], dst_hw: Sequence[int], bias: bool = True
) -> nn.Module | None:
    """The conv that changes channels and size for the ratios both references handle.

    Same size: 1x1 conv; source twice the target: 3x3 stride-2 conv; half: 4x4 stride-2
    transposed conv. None for any other ratio (the caller decides).
    """
    (sh, sw), (th, tw) = tuple(src_hw), tuple(dst_hw)
    if (sh, sw) == (th, tw):
        return nn.Conv2d(c_in, c_out, kernel_size=1, bias=bias)
    if (sh, sw) == (2 * th, 2 * tw):
        return nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=bias)
    if (2 * sh, 2 * sw) == (th, tw):
        return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=bias)
    return None


class ConvReg(nn.Module):
    """FitNet's convolutional regressor (CRD benchmark's models/util.py): conv -> BN -> ReLU.

    The conv is `ratio_conv` for the ratios 1, 2 and 1/2; a student map larger by another
    amount gets a valid conv whose kernel removes the difference; a smaller one (the benchmark
    raises) is upsampled (nearest) and then mapped by a 1x1 conv.
    """

    def __init__(self, s_shape: Shape, t_shape: Shape) -> None:
        super().__init__()
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise ValueError(f"ConvReg needs feature maps [B, C, H, W], got {list(s_shape)} "
                             f"and {list(t_shape)}")
        s_c, t_c = s_shape[1], t_shape[1]
        (s_h, s_w), (t_h, t_w) = tuple(s_shape[2:]), tuple(t_shape[2:])
        conv = ratio_conv(s_c, t_c, (s_h, s_w), (t_h, t_w))
        if conv is None and s_h >= t_h and s_w >= t_w:
            conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
        if conv is None:
            conv = nn.Sequential(nn.Upsample(size=(t_h, t_w), mode="nearest"),
                                 nn.Conv2d(s_c, t_c, 1))
        self.conv = conv
        self.bn = nn.BatchNorm2d(t_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def build_adapter(src_shape: Sequence[int], dst_shape: Sequence[int],
                  relu: bool = True) -> nn.Module:
    """A routing adapter H_st / H_ts from features shaped `src_shape` to `dst_shape` (batch dim
    first, any size), as the authors' ConvReg without conv bias.

    [B, C, H, W] -> [B, C', H', W']: `ratio_conv` (other ratios: `Resize`, then 1x1) + BN +
    ReLU; [B, C] -> [B, C']: a plain Linear. `relu=False` leaves the ReLU out, for a
    destination whose maps are signed (a transformer's residual stream: `SpotNet.relu_maps`).
    """
    src, dst = tuple(src_shape), tuple(dst_shape)
    if len(src) == 2 and len(dst) == 2:
        return nn.Linear(src[1], dst[1])
    if len(src) == 4 and len(dst) == 4:
        conv = ratio_conv(src[1], dst[1], src[2:], dst[2:], bias=False)
        layers = [conv] if conv is not None else [
            Resize(dst[2:]), nn.Conv2d(src[1], dst[1], kernel_size=1, bias=False)
        ]
        out = [nn.BatchNorm2d(dst[1]), *([nn.ReLU(inplace=True)] if relu else [])]
        return nn.Sequential(*layers, *out)
    raise ValueError(
        f"cannot adapt a feature of shape {list(src)} to {list(dst)}: both must be maps "
        "[B, C, H, W] or both vectors [B, C]"
    )


# ----------------------------------------------------------------------------- embeddings
class LinearEmbed(nn.Module):
    """Flatten + Linear (CC's embedding in the benchmark)."""

    def __init__(self, dim_in: int, dim_out: int = 128) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(flatten_samples(x))


class NormalizedEmbed(LinearEmbed):
    """Flatten + Linear + L2 normalisation (CRD's embedding: scores are cosines / T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(x), dim=1)
