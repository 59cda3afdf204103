"""Wide ResNets of the CRD benchmark (wrn_16_2, wrn_40_2): WRN-d-k, depth 6n + 4.

Pre-activation blocks, so the features are the raw group outputs (before BN-ReLU), exactly
as the CRD benchmark returns them: [conv1, group1, group2, group3, pooled embedding]; the
final BN-ReLU sits in the pooling stage.
"""

from __future__ import annotations

import torch
from torch import nn

from sakd.models.base import SpotNet
from sakd.models.layers import GlobalAvgPool, init_convs_and_norms_
from sakd.models.zoo import register_model


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 with identity or 1x1-conv shortcut.

    When the channel count changes, the shortcut (like the CRD/Zagoruyko code) takes the
    activated input; otherwise the raw input.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.shortcut = None if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.bn1(x))
        out = torch.relu(self.bn2(self.conv1(activated)))
        out = self.conv2(self.dropout(out))
        residual = x if self.shortcut is None else self.shortcut(activated)
        return residual + out


class WideResNet(SpotNet):
    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        blocks_per_group = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        stages: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
        in_ch = 16
        for out_ch, stride in zip(widths, (1, 2, 2), strict=True):
            blocks = [
                WideBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, drop_rate)
                for i in range(blocks_per_group)
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        stages.append(nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), GlobalAvgPool()))
        head = nn.Linear(in_ch, num_classes)
        stages.append(head)
        self.stages = nn.ModuleList(stages)
        init_convs_and_norms_(self)
        nn.init.zeros_(head.bias)  # CRD: default weight init, zero bias


@register_model("wrn_16_2")
def wrn_16_2(num_classes: int, drop_rate: float = 0.0) -> SpotNet:
    """WRN-16-2 (CRD benchmark)."""
    return WideResNet(16, 2, num_classes, drop_rate)


@register_model("wrn_40_2")
def wrn_40_2(num_classes: int, drop_rate: float = 0.0) -> SpotNet:
    """WRN-40-2 (CRD benchmark)."""
    return WideResNet(40, 2, num_classes, drop_rate)
