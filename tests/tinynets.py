"""A tiny SpotNet for unit tests of spots and the distillation step (fast on a CPU)."""

from __future__ import annotations

from torch import nn

from sakd.models.base import SpotNet


def conv_block(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class TinyNet(SpotNet):
    """features = [stem, block1, block2, embedding]; logits from a Linear head."""

    def __init__(self, width: int, strides: tuple[int, int] = (2, 2), classes: int = 5) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [
                conv_block(3, width, 1),
                conv_block(width, 2 * width, strides[0]),
                conv_block(2 * width, 4 * width, strides[1]),
                nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                nn.Linear(4 * width, classes),
            ]
        )
