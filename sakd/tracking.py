"""Experiment tracking behind a small interface: MLflow for real runs, in-memory for tests.

The training code only calls `Tracker` methods; which backend records them is the caller's
choice. Metric keys follow DESIGN.md (`train/loss`, `val/top1`, `route/p_distill/<spot>`, ...).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sakd.tracking_errors import guarded, store_errors

# MLflow 3's UI opens the training-runs view (charts, compare) for experiments with this tag.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
MODEL_NAME = "model"  # runs:/<run id>/model is a run's trained network (student or teacher)


class StoppedEarly(Exception):
    """Raised inside a run that was stopped on purpose (an Optuna trial the pruner stopped):
    the run ends KILLED, not FAILED, so the UI does not report a failure that never happened."""


def _end_status(err: BaseException | None) -> str:
    if err is None:
        return "FINISHED"
    return "KILLED" if isinstance(err, StoppedEarly) else "FAILED"


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

    def close_orphans(self, experiment: str, run_name: str, keep: str | None = None) -> list[str]:
        """Mark runs named `run_name` that are still RUNNING (a killed process never closed
        them) as KILLED, except `keep` (the run being resumed); returns their ids."""
        raise NotImplementedError

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


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as a run used it: name, content digest, where it lies, images per split."""

    name: str
    digest: str
    source: str  # a folder path or URI
    splits: Mapping[str, int]


@dataclass
class MemoryTracker(Tracker):
    """Keeps everything in lists: for unit tests and library use without MLflow."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stack: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        return self._stack[-1] if self._stack else None

    @contextlib.contextmanager
    def run(self, experiment, run_name, tags, params, run_id=None, nested=False):
        if run_id is None:
            run_id = f"run{len(self.runs)}"
            self.runs[run_id] = {
                "experiment": experiment,
                "name": run_name,
                "tags": dict(tags),
                "params": dict(params),
                "metrics": [],
                "artifacts": [],
                "parent": self.run_id if nested else None,
                "status": "RUNNING",
            }
        self._stack.append(run_id)
        try:
            yield run_id
            self.runs[run_id]["status"] = _end_status(None)
        except BaseException as err:
            self.runs[run_id]["status"] = _end_status(err)
            raise
        finally:
            self._stack.pop()

    def log_metrics(self, metrics, step):
        self.runs[self._stack[-1]]["metrics"].append((step, dict(metrics)))

    def close_orphans(self, experiment, run_name, keep=None):
        orphans = [i for i, r in self.runs.items() if r["experiment"] == experiment
                   and r["name"] == run_name and r["status"] == "RUNNING" and i != keep
                   and i not in self._stack]
        for run_id in orphans:
            self.runs[run_id]["status"] = "KILLED"
        return orphans

    def log_artifact(self, path, artifact_path=None):
        self.runs[self._stack[-1]]["artifacts"].append((Path(path).name, artifact_path))

    def set_tags(self, tags):
        self.runs[self._stack[-1]]["tags"].update(tags)

    def log_dataset(self, record):
        self.runs[self._stack[-1]].setdefault("datasets", []).append(record)

    def log_model(self, model, name, example, normalisation=None):
        self.runs[self._stack[-1]].setdefault("models", {})[name] = model
        return None

    def metric_history(self, key: str, run_id: str | None = None) -> list[tuple[int, float]]:
        """[(step, value)] of one metric: handy in tests."""
        run = self.runs[run_id or next(reversed(self.runs))]
        return [(s, m[key]) for s, m in run["metrics"] if key in m]


class MLflowTracker(Tracker):
    """Records to MLflow. `artifact_root` pins where new experiments keep artifacts;
    `default_tags` go on every new run (the caller's context, e.g. the DVC experiment)."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path | None = None,
        default_tags: Mapping[str, str] | None = None, system_metrics: bool = False,
    ) -> None:
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.system_metrics = system_metrics  # MLflow's own CPU/memory/GPU sampler per run
        self.default_tags = dict(default_tags or {})
        mlflow.set_tracking_uri(tracking_uri)

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        run = self._mlflow.active_run()
        return run.info.run_id if run else None

    @guarded
    def open_store(self) -> None:
        """Tables are created on first use and MLflow's migration fails when two processes run
        it at once ("... 'alembic_version'"): whoever starts parallel workers opens it first."""
        self._mlflow.MlflowClient(self.tracking_uri).search_experiments(max_results=1)

    def _experiment_id(self, name: str) -> str:
        client = self._mlflow.MlflowClient(self.tracking_uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        # one artifact folder per experiment: mlruns/<experiment>/<run id>/artifacts
        location = (self.artifact_root / name).resolve().as_uri() if self.artifact_root else None
        try:
            exp_id = client.create_experiment(
                name, artifact_location=location, tags=dict([EXPERIMENT_KIND_TAG])
            )
        except Exception:  # created meanwhile by a parallel process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
        return exp_id

    @contextlib.contextmanager
    def run(self, experiment, run_name, tags, params, run_id=None, nested=False):
        with store_errors(self.tracking_uri):  # not around the body: its errors are its own
            active = self._start(experiment, run_name, tags, params, run_id, nested)
        try:  # not `with active`: it ends every exception's run FAILED
            yield active.info.run_id
        except BaseException as err:
            self._end(_end_status(err))
            raise
        self._end(_end_status(None))

    @guarded
    def _end(self, status: str) -> None:
        self._mlflow.end_run(status)

    def _start(self, experiment, run_name, tags, params, run_id, nested):
        mlflow = self._mlflow
        if run_id is not None:
            active = mlflow.start_run(run_id=run_id, nested=nested,
                                      log_system_metrics=self.system_metrics)
        else:
            active = mlflow.start_run(
                experiment_id=self._experiment_id(experiment), run_name=run_name,
                tags={**self.default_tags, **tags}, nested=nested,
                log_system_metrics=self.system_metrics)
            # MLflow params are strings of at most 6000 chars; log in batches of 100.
            items = [(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        return active

    @guarded
    def close_orphans(self, experiment, run_name, keep=None):
        client = self._mlflow.MlflowClient(self.tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        quoted = run_name.replace("\\", "\\\\").replace("'", "\\'")
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=f"attributes.run_name = '{quoted}' and attributes.status = 'RUNNING'",
        )
        active = self.run_id
        orphans = [r.info.run_id for r in runs if r.info.run_id not in (keep, active)]
        for run_id in orphans:
            client.set_terminated(run_id, status="KILLED")
        return orphans

    @guarded
    def log_metrics(self, metrics, step):
        clean = {_metric_key(k): float(v) for k, v in metrics.items()}
        self._mlflow.log_metrics(clean, step=step)

    @guarded
    def log_artifact(self, path, artifact_path=None):
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    @guarded
    def set_tags(self, tags):
        self._mlflow.set_tags(dict(tags))

    @guarded
    def log_dataset(self, record):
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():  # two registered local sources match; both are fine
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(Path(record.source).resolve().as_uri())
        dataset = MetaDataset(source, name=record.name, digest=record.digest)
        tags = {f"{split}_size": str(n) for split, n in record.splits.items()}
        self._mlflow.log_input(dataset, context="training", tags=tags)

    @guarded
    def log_model(self, model, name, example, normalisation=None):
        """mlflow.pytorch model + weights that load safely (sakd.tracking_models)."""
        from sakd.tracking_models import log_pytorch_model

        return log_pytorch_model(model, name, example, normalisation)


def _metric_key(key: str) -> str:
    """MLflow allows letters, digits, _ - . / and spaces in keys."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def resolve_tracking_uri(configured: str | None, repo_root: Path) -> str:
    """MLFLOW_TRACKING_URI wins, then params, then an absolute sqlite file at the repo root
    (absolute, so DVC experiments running in temp dirs still write to the one database)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    return f"sqlite:///{(repo_root / 'mlflow.db').resolve()}"
