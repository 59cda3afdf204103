"""Four-group ResNets: the CRD benchmark's CIFAR "ResNet50" and ImageNet-style resnet18/34.

resnet50 (CRD `resnetv2.ResNet50`): 3x3 stride-1 stem, bottleneck groups [3, 4, 6, 3].
resnet18/resnet34: torchvision's architecture (7x7 stride-2 stem + 3x3 stride-2 max-pool,
basic-block groups [2, 2, 2, 2] / [3, 4, 6, 3]). The max-pool belongs to the stem stage, so
feature 0 is the map the first group consumes.
Features: [stem, group1, group2, group3, group4, pooled embedding].
"""

from __future__ import annotations

from torch import nn

from sakd.models.base import SpotNet
from sakd.models.layers import GlobalAvgPool, conv_bn_relu, init_convs_and_norms_
from sakd.models.resnet_blocks import BasicBlock, Bottleneck, residual_group
from sakd.models.zoo import register_model

_PLANES = (64, 128, 256, 512)
_STRIDES = (1, 2, 2, 2)


def cifar_stem() -> nn.Module:
    return conv_bn_relu(3, 64, kernel_size=3)


def imagenet_stem() -> nn.Module:
    return nn.Sequential(
        conv_bn_relu(3, 64, kernel_size=7, stride=2), nn.MaxPool2d(3, stride=2, padding=1)
    )


class ResNet(SpotNet):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: tuple[int, int, int, int],
        stem: nn.Module,
        num_classes: int,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = [stem]
        channels = 64
        for planes, depth, stride in zip(_PLANES, depths, _STRIDES, strict=True):
            group, channels = residual_group(block, channels, planes, depth, stride)
            stages.append(group)
        stages += [GlobalAvgPool(), nn.Linear(channels, num_classes)]
        self.stages = nn.ModuleList(stages)
        init_convs_and_norms_(self)


@register_model("resnet50")
def resnet50(num_classes: int) -> SpotNet:
    """CRD-benchmark ResNet50 for 32x32 inputs (bottleneck, 3x3 stem, no max-pool)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), cifar_stem(), num_classes)


@register_model("resnet18")
def resnet18(num_classes: int) -> SpotNet:
    """ImageNet-style ResNet-18 (torchvision architecture)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), imagenet_stem(), num_classes)


@register_model("resnet34")
def resnet34(num_classes: int) -> SpotNet:
    """ImageNet-style ResNet-34 (torchvision architecture)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), imagenet_stem(), num_classes)
