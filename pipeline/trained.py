"""Load the models that earlier stages trained (finished runs only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from sakd.models import SpotNet, create_model
from sakd.train.checkpoint import check_recorded, load_checkpoint, load_module_state


def load_trained(
    path: Path, module: str, stage: str, arch: str, num_classes: int | None = None
) -> tuple[SpotNet, dict[str, Any]]:
    """(model, checkpoint) from a finished run of `arch` (with `num_classes`, when given); a
    missing or unfinished one names its stage, another architecture or class count names the
    file and the mismatch, and the weights load strictly."""
    if not path.exists():
        raise UserError(f"{path} does not exist: run `dvc repro {stage}` first")
    state = load_checkpoint(path, required=("arch", "num_classes", "modules", "epoch"))
    if state["epoch"] < state["total_epochs"]:
        raise UserError(
            f"{path} is unfinished (epoch {state['epoch']}/{state['total_epochs']}): "
            f"run `dvc repro {stage}` to complete it"
        )
    expected = {"arch": arch} if num_classes is None else {"arch": arch,
                                                            "num_classes": num_classes}
    check_recorded(path, state, **expected)
    model = create_model(state["arch"], state["num_classes"])
    load_module_state(model, state["modules"].get(module), path, module)
    return model, state
