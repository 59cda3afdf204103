"""CIFAR ResNets of the CRD benchmark (resnet8 ... resnet110, resnet8x4, resnet32x4), and
resnet8_half: resnet8 at half width, the embedded glyphs benchmark's student (docs/benchmark.md).

Depth 6n + 2: a 3x3 stem, three groups of n basic blocks (strides 1, 2, 2), global average
pooling and a linear classifier. Features: [stem, group1, group2, group3, pooled embedding].
"""

from __future__ import annotations

from torch import nn

from sakd.models.base import SpotNet
from sakd.models.layers import GlobalAvgPool, conv_bn_relu, init_convs_and_norms_
from sakd.models.resnet_blocks import BasicBlock, residual_group
from sakd.models.zoo import register_model

_NARROW = (16, 16, 32, 64)  # stem, group1, group2, group3 channels
_WIDE = (32, 64, 128, 256)  # the "x4" variants
_HALF = (8, 8, 16, 32)  # half of _NARROW: a student small enough that resnet8 can teach it


class CifarResNet(SpotNet):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        blocks_per_group = (depth - 2) // 6
        stages: list[nn.Module] = [conv_bn_relu(3, widths[0])]
        channels = widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            group, channels = residual_group(BasicBlock, channels, planes, blocks_per_group, stride)
            stages.append(group)
        stages += [GlobalAvgPool(), nn.Linear(channels, num_classes)]
        self.stages = nn.ModuleList(stages)
        init_convs_and_norms_(self)


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    @register_model(name)
    def factory(num_classes: int) -> SpotNet:
        return CifarResNet(depth, widths, num_classes)

    factory.__name__ = name
    factory.__doc__ = f"CRD-benchmark {name}: depth {depth}, widths {widths}."


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _register(f"resnet{_depth}", _depth, _NARROW)
_register("resnet8x4", 8, _WIDE)
_register("resnet32x4", 32, _WIDE)
_register("resnet8_half", 8, _HALF)
