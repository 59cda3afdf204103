"""A finished cell is not trained again by `sakd pretrain` / `sakd distill`, unless --force.

A cell (one pretrained architecture, or one seed of a distill stage) is finished when its
checkpoint output holds the last epoch of the same config and MLflow holds a FINISHED run of
it with the same params hash. `dvc repro` never meets such a cell (DVC deletes a stage's outputs
before it runs it); a command typed by hand does, and then reports it instead of training a
second copy. A retrained cell's new run supersedes the earlier ones (sakd.tracking.mark_current).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.outputs import accuracy_summary
from sakd.tracking import PARAMS_HASH_TAG, RUN_PATH_TAG, Tracker
from sakd.train import distributed
from sakd.train.checkpoint import CheckpointError, load_checkpoint


@dataclass(frozen=True)
class Cell:
    """One trained network as the pipeline names it: its MLflow experiment and run path, its
    config hash, its checkpoint output and that output's resume state."""

    experiment: str
    path: str  # the run_path tag, e.g. digits/resnet14-resnet8/at-adaptive/seed0
    params_hash: str
    output: Path
    resume: Path


def finished_run(tracker: Tracker, cell: Cell) -> tuple[str, dict] | None:
    """(MLflow run id, checkpoint) of a finished cell; None when it must be trained (or
    resumed: a resume state of the same config is newer work than the output)."""
    if not cell.output.is_file() or _pending(cell):
        return None
    try:
        state = load_checkpoint(cell.output, required=("epoch", "config_hash", "history"))
    except CheckpointError:
        return None  # unreadable: training writes a good one
    history = state["history"]
    if (state["config_hash"] != cell.params_hash or state["epoch"] != state.get("total_epochs")
            or not history or "test/top1" not in history[-1]):
        return None
    runs = tracker.find_runs(cell.experiment, {RUN_PATH_TAG: cell.path,
                                               PARAMS_HASH_TAG: cell.params_hash}, "FINISHED")
    if not runs:
        return None
    return (state.get("run_id") if state.get("run_id") in runs else runs[0]), state


def _pending(cell: Cell) -> bool:
    if not cell.resume.is_file():
        return False
    try:
        return load_checkpoint(cell.resume).get("config_hash") == cell.params_hash
    except CheckpointError:
        return True  # the training loop reports it


def skip_finished(tracker: Tracker, cell: Cell, force: bool,
                  log: Callable[[str], None] = print) -> dict | None:
    """The metrics of a finished cell, which is then not trained (said in one line); None
    when it is to be trained. `force` trains it from scratch: its resume state is dropped."""
    if force:
        cell.resume.unlink(missing_ok=True)
        return None
    found = finished_run(tracker, cell)
    if found is None:
        return None
    run_id, state = found
    if not distributed.is_main():
        return {}  # rank 0 speaks for the run
    log(f"already finished: {cell.path}, MLflow run {run_id}; --force retrains")
    return accuracy_summary(state["history"])
