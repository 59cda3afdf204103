"""The dataset's normalisation inside a deployed network, so it takes images scaled to [0, 1].

The mean and std are the ones the network was trained with: recorded from the loaders' dataset
facts when the run was trained (the checkpoint's and the MLflow model's `normalisation` entry),
never looked up again later, since a dataset's statistics may be computed from what was fetched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

NORMALISATION_KEY = "normalisation"


def normalisation_record(mean: Sequence[float], std: Sequence[float]) -> dict[str, list[float]]:
    """What a checkpoint records: per-channel mean and std on the [0, 1] scale (plain lists)."""
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def recorded_normalisation(state: Mapping[str, Any],
                           channels: int) -> tuple[list[float], list[float]] | None:
    """(mean, std) recorded in a checkpoint, None when it records none (older checkpoints);
    ValueError when the entry is not `channels` finite means and positive stds."""
    entry = state.get(NORMALISATION_KEY)
    if entry is None:
        return None
    try:
        mean, std = [float(m) for m in entry["mean"]], [float(s) for s in entry["std"]]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{NORMALISATION_KEY} must hold lists 'mean' and 'std', "
                         f"got {entry!r}") from None
    good = (len(mean) == len(std) == channels and all(math.isfinite(v) for v in mean + std)
            and all(s > 0 for s in std))
    if not good:
        raise ValueError(f"{NORMALISATION_KEY} must hold {channels} finite means and positive "
                         f"stds, got mean {mean} std {std}")
    return mean, std


class Normalised(nn.Module):
    """`net((x - mean) / std)` for x: float NCHW images scaled to [0, 1]."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
