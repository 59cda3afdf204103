"""A tracker that keeps everything in dicts and lists: for unit tests and library use without
MLflow (same statuses and tags as the MLflow one)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakd.tracking.base import Tracker, end_status


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
            self.runs[run_id]["status"] = end_status(None)
        except BaseException as err:
            self.runs[run_id]["status"] = end_status(err)
            raise
        finally:
            self._stack.pop()

    def log_metrics(self, metrics, step):
        self.runs[self._stack[-1]]["metrics"].append((step, dict(metrics)))

    def find_runs(self, experiment, tags, status=None):
        return [i for i, r in reversed(self.runs.items()) if r["experiment"] == experiment
                and all(r["tags"].get(k) == v for k, v in tags.items())
                and status in (None, r["status"])]

    def set_run_tags(self, run_id, tags):
        self.runs[run_id]["tags"].update(tags)

    def terminate(self, run_id, status):
        if run_id not in self._stack:  # an open run of this process is nobody's orphan
            self.runs[run_id]["status"] = status

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
