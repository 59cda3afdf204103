"""`sensitivity` stage (`sakd tune`): the Optuna study over beta3 and the tau schedule (Fig. 4).

This file wires the library (`sakd.tuning`) to the project: settings and overrides, the
storage URL, the teacher check, the training callable (a distillation run built by
pipeline.distill), the MLflow tracker, and the DVC outputs. Workers, the study, the exact
trial budget, the baseline and the report content live in the library.

Several machines: run the same `sakd tune --storage <shared URL>` on each; the claim lock in
the storage makes them share the trials (see docs/sensitivity.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from pipeline.distill import build_distillation
from pipeline.errors import UserError, user_error_types
from pipeline.outputs import write_csv, write_json
from pipeline.paths import Layout, store_root
from pipeline.settings import make_tracker
from sakd.atomic import atomic_write
from sakd.config import DistillConfig, Params
from sakd.tracking import Tracker
from sakd.train.job import TrainingJob
from sakd.tuning import TuningError
from sakd.tuning.baseline import NoiseBand
from sakd.tuning.objective import Build, ensure_baseline, make_trainer
from sakd.tuning.results import Table, sensitivity_outputs
from sakd.tuning.storage import resolve_storage_url
from sakd.tuning.study import TuneJob, open_job_study, parent_run, study_name, with_overrides
from sakd.tuning.workers import spawn_workers, work


@dataclass(frozen=True)
class OutputPaths:
    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / "sensitivity.json"

    @property
    def report(self) -> Path:
        return self.root / "reports" / "sensitivity.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots" / "sensitivity"


def builder(job: TuneJob) -> Build:
    """The library's training callable: the study's pair as a pipeline distillation run."""
    s, params = job.cfg, job.params
    pair = s.resolved_pair(params.runs)

    def build(cfg: DistillConfig, strategy: str, checkpoint: Path, seed: int) -> TrainingJob:
        return build_distillation(params, job.root, pair.teacher, pair.student, s.distiller,
                                  strategy, seed, checkpoint, cfg=cfg, progress=job.progress,
                                  with_test=False)

    return build


def run_study(job: TuneJob, study: optuna.Study, tracker: Tracker) -> None:
    """Claim and run trials in this process (the stage itself, or one spawned worker)."""
    work(job, study, make_trainer(job, tracker, builder(job)), fatal=user_error_types())


def worker_main(job: TuneJob) -> None:
    """Entry point of a spawned worker (`--workers N`): its own study, tracker, parent run."""
    study = open_job_study(job)
    tracker = make_tracker(job.params, job.root)
    with parent_run(job, study, tracker):
        run_study(job, study, tracker)


def write_outputs(job: TuneJob, study: optuna.Study, baseline: NoiseBand | None,
                  tracker: Tracker) -> dict[str, Any]:
    """metrics/sensitivity.json, reports/sensitivity.md, plots/sensitivity/*; also logged on
    the study's parent MLflow run (best params, importance table, figures)."""
    out = OutputPaths(job.root)
    result = sensitivity_outputs(job, study, baseline, plots_link="../plots/sensitivity",
                                 metrics_link="../metrics/sensitivity.json")
    files = []
    for name, content in result.plots.items():
        path = out.plots / name
        if isinstance(content, Table):
            write_csv(path, content.rows, content.columns)
        else:
            atomic_write(path, lambda tmp, data=content: tmp.write_bytes(data))
        files.append(path)
    write_json(out.metrics, result.metrics)
    atomic_write(out.report, lambda tmp: tmp.write_text(result.report, encoding="utf-8"))
    _log_parent(tracker, result.metrics, [out.report, out.metrics, *files])
    return result.metrics


def _log_parent(tracker: Tracker, metrics: dict[str, Any], files: list[Path]) -> None:
    step = metrics["n_complete"]
    numbers = {"best/val_top1": metrics["best_value"],
               "baseline/always_top1": metrics["baseline_always_top1"],
               "baseline/always_std": metrics["baseline_always_std"],
               **{f"best/{k}": v for k, v in metrics["best_params"].items()},
               **{f"importance/{k}": v for k, v in metrics["importance"].items()}}
    tracker.log_metrics({k: v for k, v in numbers.items() if isinstance(v, int | float)},
                        step=step)
    tracker.set_tags({f"best.{k}": str(v) for k, v in metrics["best_params"].items()}
                     | {"best.trial": str(metrics["best_trial"])})
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "importance.csv"
        write_csv(table, [{"param": k, "importance": v} for k, v in
                          metrics["importance"].items()], ["param", "importance"])
        tracker.log_artifact(table, "sensitivity")
        for path in files:
            tracker.log_artifact(path, "sensitivity")


def run_tune(
    params: Params,
    root: Path,
    n_trials: int | None = None,
    workers: int | None = None,
    storage: str | None = None,
    progress: bool = True,
    tracker: Tracker | None = None,
) -> dict[str, Any]:
    """Run (or continue) the study, then write its outputs; returns metrics/sensitivity.json.

    Bad input (ranges, names, storage, a study with other settings) raises before any trial
    runs, and the existing study is left as it was.
    """
    params = with_overrides(params, n_trials, workers)
    s = params.sensitivity
    try:
        url = resolve_storage_url(s.storage, store_root(root), override=storage)
    except TuningError as err:
        raise UserError(str(err)) from None
    teacher = Layout(root, params.data.dataset).pretrained(s.resolved_pair(params.runs).teacher)
    if not teacher.exists():
        raise UserError(f"{teacher} does not exist: run `dvc repro pretrain` first")
    job = TuneJob(params, root, url, study_name(params), progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_job_study(job)
    except TuningError as err:
        raise UserError(str(err)) from None
    tracker = tracker or make_tracker(params, root)
    with parent_run(job, study, tracker) as parent_id:
        baseline = ensure_baseline(job, study, tracker, builder(job))
        if s.workers == 1:
            run_study(job, study, tracker)
        else:
            try:
                spawn_workers(worker_main, replace(job, parent_run_id=parent_id), s.workers,
                              fatal=user_error_types())
            except TuningError as err:
                raise UserError(str(err)) from None
        if baseline is None:  # another worker is training a seed of it: wait for its value
            baseline = ensure_baseline(job, study, tracker, builder(job), wait=True)
        return write_outputs(job, study, baseline, tracker)
