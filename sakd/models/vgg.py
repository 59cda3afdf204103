"""VGG with BatchNorm of the CRD benchmark (vgg8 = cfg "S", vgg13 = cfg "B"; no FC stack).

Five conv groups (3x3 conv with bias -> BN -> ReLU), 2x2 max-pools between them, global
average pooling and one linear layer. Features: [group0 ... group4, pooled embedding]; each
pool sits at the start of the next stage, so the features are the un-pooled group outputs.
Max-pools use ceil_mode so a 1x1 map stays 1x1 (8x8 inputs); the pool before group 4 runs
only on maps of 8x8 or larger, which reproduces the CRD rule (pool for 64x64 inputs, not
for 32x32 ones) and keeps larger inputs from growing the last map needlessly.
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

_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)


class PoolIfLarge(nn.Module):
    """2x2 max-pool applied only when the map is at least `min_size` on both sides."""

    def __init__(self, min_size: int = 8) -> None:
        super().__init__()
        self.min_size = min_size
        self.pool = _pool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= self.min_size:
            return self.pool(x)
        return x


class VGG(SpotNet):
    def __init__(self, config: tuple[tuple[int, ...], ...], num_classes: int) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        in_ch = 3
        for index, group in enumerate(config):
            layers: list[nn.Module] = []
            if index in (1, 2, 3):
                layers.append(_pool())
            elif index == 4:
                layers.append(PoolIfLarge())
            for out_ch in group:
                layers.append(conv_bn_relu(in_ch, out_ch, bias=True))
                in_ch = out_ch
            stages.append(nn.Sequential(*layers))
        head = nn.Linear(in_ch, num_classes)
        stages += [GlobalAvgPool(), head]
        self.stages = nn.ModuleList(stages)
        init_convs_and_norms_(self)
        init_linear_small_(head)


@register_model("vgg8")
def vgg8(num_classes: int) -> SpotNet:
    """VGG-8 with BN (CRD `vgg8_bn`)."""
    return VGG(_CONFIGS["vgg8"], num_classes)


@register_model("vgg13")
def vgg13(num_classes: int) -> SpotNet:
    """VGG-13 with BN (CRD `vgg13_bn`)."""
    return VGG(_CONFIGS["vgg13"], num_classes)
