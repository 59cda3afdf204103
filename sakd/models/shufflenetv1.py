"""ShuffleNetV1 of the CRD benchmark (groups 3, out channels 240/480/960, blocks 4/8/4).

Features: [stem (1x1 conv-BN-ReLU), group1, group2, group3, pooled embedding]. Like the CRD
code, it keeps PyTorch's default initialisation (no custom init).
"""

from __future__ import annotations

import torch
from torch import nn

from sakd.models.base import SpotNet
from sakd.models.layers import GlobalAvgPool, conv_bn_relu
from sakd.models.zoo import register_model

_STEM_CHANNELS = 24


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, g*c, H, W] -> interleave the g groups' channels."""
    n, channels, h, w = x.shape
    return x.view(n, groups, channels // groups, h, w).transpose(1, 2).reshape(n, channels, h, w)


class ShuffleUnit(nn.Module):
    """Grouped 1x1 -> shuffle -> 3x3 depthwise -> grouped 1x1.

    Stride 1: add the identity. Stride 2: concatenate a 3x3 average-pooled shortcut (so the
    branch produces out_ch - in_ch channels). The first unit after the 24-channel stem uses an
    ungrouped first 1x1 conv, as in the paper and the CRD code.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        branch_ch = out_ch - in_ch if stride == 2 else out_ch
        mid = branch_ch // 4
        self.first_groups = 1 if in_ch == _STEM_CHANNELS else groups
        self.conv1 = nn.Conv2d(in_ch, mid, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_ch, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_ch)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.pool is not None:
            return torch.relu(torch.cat([out, self.pool(x)], dim=1))
        return torch.relu(out + x)


class ShuffleNetV1(SpotNet):
    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...] = (240, 480, 960),
        depths: tuple[int, ...] = (4, 8, 4),
        groups: int = 3,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = [conv_bn_relu(3, _STEM_CHANNELS, kernel_size=1)]
        in_ch = _STEM_CHANNELS
        for out_ch, depth in zip(widths, depths, strict=True):
            units = []
            for i in range(depth):
                units.append(ShuffleUnit(in_ch, out_ch, 2 if i == 0 else 1, groups))
                in_ch = out_ch
            stages.append(nn.Sequential(*units))
        stages += [GlobalAvgPool(), nn.Linear(in_ch, num_classes)]
        self.stages = nn.ModuleList(stages)


@register_model("shufflenetv1")
def shufflenetv1(num_classes: int) -> SpotNet:
    """CRD-benchmark ShuffleV1 (0.95M params at 100 classes)."""
    return ShuffleNetV1(num_classes)
