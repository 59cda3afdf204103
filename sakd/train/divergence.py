"""Divergence: a NaN or infinite loss, parameter or buffer (a BatchNorm running variance) ends
a run before its checkpoint is written, so a kept checkpoint is finite everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


def nonfinite_tensors(modules: Mapping[str, nn.Module]) -> list[str]:
    """`module.key` of every floating parameter or buffer holding a NaN or inf (one host sync)."""
    named = [(f"{m}.{k}", t) for m, module in modules.items()
             for k, t in module.state_dict().items() if t.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).cpu()
    return [name for (name, _), ok in zip(named, finite.tolist(), strict=True) if not ok]


def divergence(metrics: Mapping[str, float], modules: Mapping[str, nn.Module], epoch: int,
               epochs: int, checkpoint: Path) -> str | None:
    """What diverged in `epoch` (0-based; losses first, then the weights), said as the one line
    a user reads, or None. Checked before the epoch's checkpoint is written."""
    bad = sorted(k for k, v in metrics.items() if k.startswith("train/") and not math.isfinite(v))
    if not bad:
        bad = nonfinite_tensors(modules)
    if not bad:
        return None
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    kept = (f"kept {checkpoint} from epoch {epoch} (finite everywhere; a rerun resumes "
            f"from it)" if epoch else "no checkpoint was kept (it diverged in the first epoch)")
    return (f"training diverged in epoch {epoch + 1}/{epochs}: {shown} not finite; {kept}. "
            f"Lower the learning rate or a loss weight and rerun.")
