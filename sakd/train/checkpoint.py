"""Checkpoints: plain tensors and containers only, written atomically, loaded safely.

`torch.load(weights_only=True)` refuses pickled code, so a checkpoint from elsewhere cannot run
anything; sakd.atomic's temp file + rename means a killed process never leaves a half-written
checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sakd.atomic import atomic_torch_save, atomic_write

# atomic_write stays importable from here until pipeline/tune.py and pipeline/decisions.py use
# sakd.atomic directly.
__all__ = [
    "CheckpointError", "atomic_write", "check_recorded", "load_checkpoint", "load_module_state",
    "save_checkpoint",
]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not what was expected."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_torch_save(state, Path(path))


def load_checkpoint(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint onto the CPU; errors name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupted, truncated, or holds pickled objects
        raise CheckpointError(
            f"checkpoint {path} is not a readable sakd checkpoint (expected a torch.save file of "
            f"tensors and plain containers): {err}. Delete it and rerun the stage that writes it."
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, found {type(state).__name__}")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing} (has {sorted(state)})")
    return state


def check_recorded(path: Path, state: dict[str, Any], **expected: Any) -> None:
    """CheckpointError unless each recorded value (e.g. arch, num_classes) is the expected one:
    a file swapped for another run's must not be used under this run's name."""
    wrong = [f"{k} {state.get(k)!r} (expected {v!r})" for k, v in expected.items()
             if state.get(k) != v]
    if wrong:
        raise CheckpointError(f"checkpoint {path} records {', '.join(wrong)}; it belongs to "
                              f"another run. Delete it and rerun the stage that writes it.")


def load_module_state(module: torch.nn.Module, weights: Any, path: Path, name: str) -> None:
    """Load `weights` strictly (every key, every shape) or raise CheckpointError naming the file:
    a checkpoint whose recorded architecture disagrees with its weights is refused."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path}: modules.{name} is not a state dict")
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"checkpoint {path}: the weights of {name!r} do not fit the "
                              f"recorded architecture: {detail}") from None
