"""The block-structured network contract shared by every model in the zoo.

A `SpotNet` is a chain of stages. Stage i maps feature i-1 (the input image for i = 0) to
feature i; the last stage is the classifier head and maps the last feature (the pooled
embedding) to the logits. So, following the CRD-benchmark convention,

    features = [stem output, output of each block group ..., pooled embedding]
    logits   = head(features[-1])

Feature index k is distillation spot k+1 of the paper; the logits are spot N+1 with
N = len(features). Because the network is an explicit chain, the routing network can run any
contiguous segment of it (`run_stages`) and interleave teacher and student segments.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class SpotNet(nn.Module):
    """Base class: subclasses build `self.stages` (an nn.ModuleList, head last)."""

    stages: nn.ModuleList
    relu_maps: ClassVar[bool] = True
    """Its feature maps are post-ReLU activations (the CNNs; the authors' adapters into them end
    with a ReLU). False for a signed residual stream (the vision transformers)."""

    @property
    def num_features(self) -> int:
        """Number of feature spots (excluding the logits)."""
        return len(self.stages) - 1

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[list[torch.Tensor], torch.Tensor]:
        features: list[torch.Tensor] = []
        h = x
        for stage in self.stages[:-1]:
            h = stage(h)
            features.append(h)
        logits = self.stages[-1](h)
        return (features, logits) if return_features else logits

    def run_stages(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Run stages[start:stop] on h.

        run_stages(x, 0, k + 1) is feature k; run_stages(features[k], k + 1, len(stages)) is
        the logits. Indices follow the features list; stop = len(self.stages) ends at the logits.
        """
        for stage in self.stages[start:stop]:
            h = stage(h)
        return h


def spot_name(feature_index: int, num_features: int) -> str:
    """Paper numbering: feature k is spot k+1 ("spot1" ...); the logits are named "logits"."""
    if feature_index == num_features:
        return "logits"
    return f"spot{feature_index + 1}"
