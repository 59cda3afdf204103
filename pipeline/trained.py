"""Load the models that earlier stages trained (finished runs only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from sakd.models import SpotNet, create_model
from sakd.train.checkpoint import load_checkpoint


def load_trained(path: Path, module: str, stage: str) -> tuple[SpotNet, dict[str, Any]]:
    """(model, checkpoint) from a finished run; a missing or unfinished one names its stage."""
    if not path.exists():
        raise UserError(f"{path} does not exist: run `dvc repro {stage}` first")
    state = load_checkpoint(path, required=("arch", "num_classes", "modules", "epoch"))
    if state["epoch"] < state["total_epochs"]:
        raise UserError(
            f"{path} is unfinished (epoch {state['epoch']}/{state['total_epochs']}): "
            f"run `dvc repro {stage}` to complete it"
        )
    model = create_model(state["arch"], state["num_classes"])
    model.load_state_dict(state["modules"][module])
    return model, state
