"""Small building blocks and weight initialisers shared by the model families."""

from __future__ import annotations

import torch
from torch import nn


class GlobalAvgPool(nn.Module):
    """Adaptive average pool to 1x1, then flatten: the pooled embedding for any input size.

    Replaces the CRD benchmark's fixed `avg_pool2d(8)` / `avg_pool2d(4)`; at 32x32 inputs the
    last map is exactly that size, so the result is identical there.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, bias: bool = False
) -> nn.Sequential:
    """Conv (same padding) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def init_convs_and_norms_(model: nn.Module) -> None:
    """CRD-benchmark init: convs N(0, 2/fan_out) (Kaiming, fan_out, ReLU), conv biases 0,
    BatchNorm weight 1 and bias 0. Linear layers are left to each family's own rule."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_linear_small_(linear: nn.Linear, std: float = 0.01) -> None:
    """Classifier init of the CRD VGG / MobileNetV2: weight N(0, std^2), bias 0."""
    nn.init.normal_(linear.weight, 0.0, std)
    nn.init.zeros_(linear.bias)
