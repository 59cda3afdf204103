"""One `sakd tune` invocation as plain data: what every worker process gets a copy of."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sakd.config import Params, SensitivityConfig, validate


@dataclass(frozen=True)
class TuneJob:
    """Everything a worker needs (picklable: spawned worker processes get a copy)."""

    params: Params
    root: Path  # the project root: data, the teacher checkpoint, relative storage files
    storage_url: str  # absolute (see urls.resolve_storage_url)
    study: str
    progress: bool = True
    parent_run_id: str | None = None  # the study's MLflow run, when a parent process opened it

    @property
    def cfg(self) -> SensitivityConfig:
        return self.params.sensitivity

    @property
    def experiment(self) -> str:
        return f"{self.params.tracking.experiment_prefix}-sensitivity"


def with_overrides(params: Params, n_trials: int | None = None,
                   workers: int | None = None) -> Params:
    """params with CLI overrides, validated like params.yaml (ConfigError names the key)."""
    changes = {k: v for k, v in (("n_trials", n_trials), ("workers", workers)) if v is not None}
    if not changes:
        return params
    cfg = validate(SensitivityConfig, {**params.sensitivity.model_dump(), **changes}, "sensitivity")
    return params.model_copy(update={"sensitivity": cfg})
