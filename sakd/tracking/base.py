"""What training code may record (`Tracker`), and the tags that tell runs of one cell apart.

A cell is one trained network: one pretrained architecture, or one seed of a distillation.
Every run of a cell carries its `run_path` (`<dataset>/<teacher>-<student>/<distiller>-
<strategy>/seed<k>`) and `params_hash`; when a cell is trained again with the same params, the
new run becomes the current one (`sakd.current=true`) and the earlier FINISHED ones are kept,
tagged `sakd.current=false` and `sakd.superseded_by=<new run id>`, so a UI filter on
`sakd.current` shows one run per cell and the history stays.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# MLflow 3's UI opens the training-runs view (charts, compare) for experiments with this tag.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
MODEL_NAME = "model"  # runs:/<run id>/model is a run's trained network (student or teacher)
RUN_PATH_TAG = "run_path"  # which cell a run trained (the old, long run name)
PARAMS_HASH_TAG = "params_hash"  # the config the cell was trained with
CURRENT_TAG = "sakd.current"  # "true" on the one run of a cell and params hash that counts
SUPERSEDED_TAG = "sakd.superseded_by"  # on an earlier run: the id of the run that replaced it


class StoppedEarly(Exception):
    """Raised inside a run that was stopped on purpose (an Optuna trial the pruner stopped):
    the run ends KILLED, not FAILED, so the UI does not report a failure that never happened."""


def end_status(err: BaseException | None) -> str:
    if err is None:
        return "FINISHED"
    return "KILLED" if isinstance(err, StoppedEarly) else "FAILED"


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as a run used it: name, content digest, where it lies, images per split."""

    name: str
    digest: str
    source: str  # a folder path or URI
    splits: Mapping[str, int]


class Tracker:
    """What training code may record. Subclasses implement the backend."""

    run_id: str | None = None

    @contextlib.contextmanager
    def run(
        self,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        run_id: str | None = None,
        nested: bool = False,
    ) -> Iterator[str]:
        """Open (or, with run_id, reopen) a run; yields its id."""
        raise NotImplementedError
        yield ""  # pragma: no cover

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def find_runs(self, experiment: str, tags: Mapping[str, str],
                  status: str | None = None) -> list[str]:
        """Ids of the runs of `experiment` that carry every tag in `tags` (and have `status`,
        when given), newest first; looked up by tags, never by run name."""
        raise NotImplementedError

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Tag any run, open or ended (set_tags tags the open one)."""
        raise NotImplementedError

    def terminate(self, run_id: str, status: str) -> None:
        """End a run that no process will end any more (RUNNING -> `status`)."""
        raise NotImplementedError

    def close_orphans(self, experiment: str, identity: Mapping[str, str],
                      keep: str | None = None) -> list[str]:
        """Mark the runs with these tags (one cell) that are still RUNNING (a killed process
        never closed them) as KILLED, except `keep` (the run being resumed); returns their ids."""
        orphans = [i for i in self.find_runs(experiment, identity, "RUNNING")
                   if i not in (keep, self.run_id)]
        for run_id in orphans:
            self.terminate(run_id, "KILLED")
        return orphans

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        raise NotImplementedError

    def set_tags(self, tags: Mapping[str, str]) -> None:
        raise NotImplementedError

    def log_dataset(self, record: DatasetRecord) -> None:
        """Record which data the run trained on (MLflow: the run's Datasets)."""
        raise NotImplementedError

    def log_model(self, model: nn.Module, name: str, example: torch.Tensor,
                  normalisation: Mapping[str, list[float]] | None = None) -> str | None:
        """Log a network as a loadable model (with the training `normalisation` inside: images
        in [0, 1]); returns its URI, if any."""
        raise NotImplementedError

    def open_store(self) -> None:
        """Open the backend's store now, so a broken one fails before any training."""


def mark_current(tracker: Tracker, experiment: str, run_id: str,
                 identity: Mapping[str, str]) -> list[str]:
    """Make `run_id` the current run of its cell: the other FINISHED runs with the same
    `identity` tags (run path and params hash) are tagged superseded by it; returns their ids.
    History is kept: nothing is deleted."""
    earlier = [i for i in tracker.find_runs(experiment, identity, "FINISHED") if i != run_id]
    for old in earlier:
        tracker.set_run_tags(old, {CURRENT_TAG: "false", SUPERSEDED_TAG: run_id})
    tracker.set_run_tags(run_id, {CURRENT_TAG: "true"})
    return earlier


def resolve_tracking_uri(configured: str | None, repo_root: Path) -> str:
    """MLFLOW_TRACKING_URI wins, then params, then an absolute sqlite file at the repo root
    (absolute, so DVC experiments running in temp dirs still write to the one database)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    return f"sqlite:///{(repo_root / 'mlflow.db').resolve()}"
