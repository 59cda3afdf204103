"""MobileNetV2 of the CRD benchmark at width 0.5 ("mobile_half", expansion 6): 0.81M params.

Features follow the CRD benchmark: [stem, after inverted-residual settings 0-1, 2, 3-4, 5-6,
pooled embedding]; the final 1x1 conv to 1280 channels sits in the pooling stage.
"""

from __future__ import annotations

import torch
from torch import nn

from sakd.models.base import SpotNet
from sakd.models.layers import (
    GlobalAvgPool,
    conv_bn_relu,
    init_convs_and_norms_,
    init_linear_small_,
)
from sakd.models.zoo import register_model

# (expansion (None = the network's), output channels at width 1, repeats, first stride)
_SETTINGS: tuple[tuple[int | None, int, int, int], ...] = (
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
)
# Which settings each feature stage groups together (CRD's f1..f4).
_STAGE_GROUPS = ((0, 1), (2,), (3, 4), (5, 6))
_LAST_CHANNELS = 1280


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (strided) -> 1x1 linear projection; residual if shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        self.conv = nn.Sequential(
            conv_bn_relu(in_ch, hidden, kernel_size=1),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(SpotNet):
    def __init__(self, num_classes: int, width_mult: float = 0.5, expansion: int = 6) -> None:
        super().__init__()
        in_ch = int(32 * width_mult)
        settings = []
        for t, c, n, s in _SETTINGS:
            out_ch = int(c * width_mult)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t or expansion))
                in_ch = out_ch
            settings.append(blocks)
        last = int(_LAST_CHANNELS * width_mult) if width_mult > 1.0 else _LAST_CHANNELS
        stages: list[nn.Module] = [conv_bn_relu(3, int(32 * width_mult), stride=2)]
        for group in _STAGE_GROUPS:
            stages.append(nn.Sequential(*(block for i in group for block in settings[i])))
        stages.append(nn.Sequential(conv_bn_relu(in_ch, last, kernel_size=1), GlobalAvgPool()))
        head = nn.Linear(last, num_classes)
        stages.append(head)
        self.stages = nn.ModuleList(stages)
        init_convs_and_norms_(self)
        init_linear_small_(head)


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int, width_mult: float = 0.5) -> SpotNet:
    """CRD-benchmark MobileNetV2; width 0.5 is `mobile_half`, 1.0 the authors' full (2.35M)."""
    return MobileNetV2(num_classes, width_mult=width_mult)
