"""`sensitivity` stage (`sakd tune`): the Optuna study over beta3 and the tau schedule (Fig. 4).

This file wires the library together: settings and overrides, the storage and study, one
MLflow parent run, the training callable (a shortened distillation per trial), worker
processes, and the DVC outputs. The study logic itself lives in `sakd.tuning`.

Several machines: run the same `sakd tune --storage <shared URL>` on each; the claim lock in
the storage makes them share the trials (see docs/sensitivity.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from pipeline.distill import build_distillation
from pipeline.errors import UserError, user_error_types
from pipeline.outputs import write_csv, write_json
from pipeline.paths import Layout
from pipeline.settings import make_tracker
from sakd.config import Params, SensitivityConfig, flatten, validate
from sakd.tracking import MemoryTracker, MLflowTracker, Tracker
from sakd.train.checkpoint import atomic_write
from sakd.train.loop import RunSpec, fit
from sakd.tuning import TuningError
from sakd.tuning.budget import TrialClaimer
from sakd.tuning.hyperparams import HYPERPARAMS, LABELS, base_values, trial_config
from sakd.tuning.locks import study_lock
from sakd.tuning.plans import GridPlan, fixed_values, plan_for
from sakd.tuning.plots import history_png, sweep_png
from sakd.tuning.pruners import create_pruner
from sakd.tuning.report import StudySummary, render_sensitivity, summary_metrics
from sakd.tuning.results import TRIAL_COLUMNS, history, importances, sweep, trial_rows
from sakd.tuning.runner import TrainFn, TrialSetting, run_worker
from sakd.tuning.storage import open_storage
from sakd.tuning.study import (
    STRATEGY,
    open_study,
    study_attrs,
    study_fingerprint,
    study_name,
)
from sakd.tuning.urls import redact, resolve_storage_url, storage_file

PARENT_RUN_ATTR = "mlflow_parent_run_id"
BASELINE_ATTR = "baseline_always_top1"
FIG4_AXES = (("beta3", True), ("tau0", False))  # (axis, log scale): the two panels of Fig. 4


@dataclass(frozen=True)
class TuneJob:
    """Everything a worker needs (picklable: worker processes get a copy)."""

    params: Params
    root: Path
    storage_url: str
    study: str
    progress: bool = True
    parent_run_id: str | None = None

    @property
    def cfg(self) -> SensitivityConfig:
        return self.params.sensitivity

    @property
    def experiment(self) -> str:
        return f"{self.params.tracking.experiment_prefix}-sensitivity"


# ---------------------------------------------------------------------------------- settings


def with_overrides(params: Params, n_trials: int | None = None,
                   workers: int | None = None) -> Params:
    """params with CLI overrides, validated like params.yaml (ConfigError names the key)."""
    changes = {k: v for k, v in (("n_trials", n_trials), ("workers", workers)) if v is not None}
    if not changes:
        return params
    cfg = validate(SensitivityConfig, {**params.sensitivity.model_dump(), **changes}, "sensitivity")
    return params.model_copy(update={"sensitivity": cfg})


def _display_storage(url: str, root: Path) -> str:
    """Storage as shown in reports: relative to the root when it is a file there."""
    file = storage_file(url)
    if file is not None:
        with contextlib.suppress(ValueError):
            rel = file.resolve().relative_to(root.resolve()).as_posix()
            return f"journal:{rel}" if url.startswith("journal:") else f"sqlite:///{rel}"
    return redact(url)


# ---------------------------------------------------------------------------------- training


def _distill_once(
    job: TuneJob, tracker: Tracker, values: dict[str, Any], strategy: str, name: str,
    tags: dict[str, str], report: Callable[[int, float], None] | None,
) -> float:
    """One shortened distillation in a nested MLflow run; returns its last val top-1."""
    s, params = job.cfg, job.params
    pair = s.resolved_pair(params.runs)
    cfg = trial_config(params.distill, values, s.epochs)
    with tempfile.TemporaryDirectory(prefix="sakd-tune-") as tmp:
        d = build_distillation(params, job.root, pair.teacher, pair.student, s.distiller,
                               strategy, s.seed, Path(tmp) / "run.pt", cfg=cfg,
                               progress=job.progress)

        def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            if report is None:
                return
            try:
                report(epoch, metrics["val/top1"])
            except optuna.TrialPruned:
                tracker.set_tags({"optuna.state": "PRUNED"})
                raise

        def on_finish(history: list[dict]) -> None:
            tracker.log_metrics({"trial/val_top1": history[-1]["val/top1"]}, step=len(history))
            if report is not None:
                tracker.set_tags({"optuna.state": "COMPLETE"})

        run = RunSpec(
            experiment=job.experiment, name=name, nested=True,
            tags={**d.tags, "stage": "sensitivity", "optuna.study": job.study, **tags},
            params={**d.params, **{f"trial.{k}": v for k, v in values.items()}},
        )
        history = fit(replace(d.job, on_epoch_end=on_epoch_end), tracker, run,
                      on_finish=on_finish, log=lambda line: print(f"[{name}] {line}"))
    return float(history[-1]["val/top1"])


def make_trainer(job: TuneJob, tracker: Tracker) -> TrainFn:
    """The objective's training: spot-adaptive distillation with the trial's values."""

    def train(setting: TrialSetting) -> float:
        return _distill_once(job, tracker, setting.values, STRATEGY,
                             name=f"trial-{setting.number}",
                             tags={"optuna.trial": str(setting.number)}, report=setting.report)

    return train


def ensure_baseline(job: TuneJob, study: optuna.Study, tracker: Tracker) -> float | None:
    """Fig. 4's dashed line: the `always` strategy, same epochs and seed; trained once per
    study (kept in the study) and, by running first, a check that data and teacher load."""
    if not job.cfg.baseline:
        return None
    if BASELINE_ATTR not in study.user_attrs:
        value = _distill_once(job, tracker, {}, "always", name="baseline-always",
                              tags={"optuna.role": "baseline"}, report=None)
        study.set_user_attr(BASELINE_ATTR, value)
    return float(study.user_attrs[BASELINE_ATTR])


# ----------------------------------------------------------------------------------- workers


def work(job: TuneJob, study: optuna.Study, tracker: Tracker) -> None:
    """Claim and run trials of the study in this process until it has all of them."""
    plan = plan_for(job.params)
    claimer = TrialClaimer(study, plan, study_lock(job.storage_url, job.study))
    done = run_worker(claimer, make_trainer(job, tracker), fixed_values(job.params, plan),
                      fatal=(*user_error_types(), TuningError))
    if done:
        print(f"worker {os.getpid()}: " + ", ".join(f"{n} {s.lower()}" for s, n in done.items()))


def _load_study(job: TuneJob) -> optuna.Study:
    """The study, with the configured pruner (searches only: every grid point runs in full)."""
    s = job.cfg
    pruner = (create_pruner(s.pruner.kind, s.pruner.n_startup_trials, s.pruner.n_warmup_steps,
                            s.epochs) if s.mode == "search" else None)
    fingerprint = study_fingerprint(job.params)
    return open_study(open_storage(job.storage_url), job.study,
                      study_attrs(job.params, fingerprint), pruner)


def worker_main(job: TuneJob, threads: int) -> None:
    """Entry point of a worker process (`--workers N`): same loop, its own connections."""
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _load_study(job)
        tracker = make_tracker(job.params, job.root)
        with _parent_run(job, study, tracker):
            work(job, study, tracker)
    except (*user_error_types(), TuningError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def run_workers(job: TuneJob, workers: int) -> None:
    """N spawned processes on this machine, each one claiming trials from the shared study."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=worker_main, args=(job, threads), name=f"sakd-tune-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    failed = [f"{p.name} (exit {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise UserError(f"tuning workers failed: {', '.join(failed)}; see their messages above. "
                        f"Finished trials are kept: re-run to complete the study")


# ------------------------------------------------------------------------------------ MLflow


def _run_exists(tracker: Tracker, run_id: str) -> bool:
    if isinstance(tracker, MemoryTracker):
        return run_id in tracker.runs
    if isinstance(tracker, MLflowTracker):
        import mlflow

        try:
            mlflow.MlflowClient(tracker.tracking_uri).get_run(run_id)
            return True
        except Exception:
            return False
    return False


@contextlib.contextmanager
def _parent_run(job: TuneJob, study: optuna.Study, tracker: Tracker):
    """The study's MLflow run: reopened on every re-run, by every worker and, with a shared
    tracking server, by every machine (chosen under the study lock: one parent per study)."""
    with contextlib.ExitStack() as stack:
        with study_lock(job.storage_url, job.study):
            run_id = job.parent_run_id or study.user_attrs.get(PARENT_RUN_ATTR)
            if run_id and _run_exists(tracker, run_id):
                rid = stack.enter_context(
                    tracker.run(job.experiment, job.study, {}, {}, run_id=run_id))
            else:
                rid = stack.enter_context(tracker.run(job.experiment, job.study,
                                                      _parent_tags(job), _parent_params(job)))
                if PARENT_RUN_ATTR not in study.user_attrs:  # another tracking store's is kept
                    study.set_user_attr(PARENT_RUN_ATTR, rid)
        yield rid


def _parent_tags(job: TuneJob) -> dict[str, str]:
    s, params = job.cfg, job.params
    pair = s.resolved_pair(params.runs)
    return {"stage": "sensitivity", "dataset": params.data.dataset, "teacher": pair.teacher,
            "student": pair.student, "distiller": s.distiller, "optuna.study": job.study,
            "storage": _display_storage(job.storage_url, job.root)}


def _parent_params(job: TuneJob) -> dict[str, Any]:
    """The sensitivity section, less what may change while the study continues."""
    return {k: v for k, v in flatten(job.cfg, "sensitivity").items()
            if k.rsplit(".", 1)[-1] not in ("storage", "workers", "n_trials")}


# ----------------------------------------------------------------------------------- outputs


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


def _space_description(params: Params) -> dict[str, str]:
    s, base = params.sensitivity, base_values(params.distill)
    out = {}
    for name in HYPERPARAMS:
        if s.mode == "grid":
            values = getattr(s.grid, name)
            out[name] = (", ".join(map(str, values)) + f" (others at {base[name]})" if values
                         else f"{base[name]} (fixed)")
            continue
        rng = getattr(s.search, name)
        if name not in s.search.searched():
            out[name] = f"{base[name]} (fixed)"
        elif name == "schedule":
            out[name] = ", ".join(rng)
        else:
            out[name] = f"[{rng.low:g}, {rng.high:g}]" + (" (log)" if rng.log else "")
    return out


def write_outputs(job: TuneJob, study: optuna.Study, baseline: float | None,
                  tracker: Tracker) -> dict[str, Any]:
    """metrics/sensitivity.json, reports/sensitivity.md, plots/sensitivity/*; also logged on
    the study's parent MLflow run (best params, importance table, figures)."""
    params, s = job.params, job.cfg
    plan = plan_for(params)
    base = base_values(params.distill)
    rows = trial_rows(study.get_trials(deepcopy=False), fixed_values(params, plan))
    out = OutputPaths(job.root)
    pair = s.resolved_pair(params.runs)
    what = f"{params.data.dataset}: {pair.teacher} → {pair.student}, {s.distiller}"

    files: list[Path] = []
    write_csv(out.plots / "trials.csv", [r.as_dict() for r in rows], TRIAL_COLUMNS)
    hist = history(rows)
    write_csv(out.plots / "history.csv", hist, ["trial", "val_top1", "best_val_top1"])
    _write_bytes(out.plots / "history.png",
                 history_png(hist, f"Optimisation history ({what})", baseline))
    files += [out.plots / "trials.csv", out.plots / "history.csv", out.plots / "history.png"]
    figures = []
    for axis, log_x in FIG4_AXES:
        points = sweep(rows, axis, s.mode, base)
        write_csv(out.plots / f"{axis}.csv",
                  [{axis: x, "val_top1": y, "always_top1": baseline} for x, y in points],
                  [axis, "val_top1", "always_top1"])
        title = f"Fig. 4: sensitivity to {axis} ({what})"
        rng = getattr(s.search, axis) if s.mode == "search" else None
        rng = rng if rng is not None and rng.active else None
        _write_bytes(out.plots / f"{axis}.png",
                     sweep_png(points, LABELS[axis], title, baseline, log_x=log_x,
                               connect=s.mode == "grid",
                               xlim=(rng.low, rng.high) if rng else None))
        figures.append((f"accuracy vs {axis}", f"../plots/sensitivity/{axis}.png"))
        files += [out.plots / f"{axis}.csv", out.plots / f"{axis}.png"]
    figures.append(("optimisation history", "../plots/sensitivity/history.png"))

    imp, note = importances(study)
    summary = StudySummary(
        study=job.study, storage=_display_storage(job.storage_url, job.root), mode=s.mode,
        dataset=params.data.dataset, teacher=pair.teacher, student=pair.student,
        distiller=s.distiller, epochs=s.epochs, seed=s.seed,
        target=len(plan.points) if isinstance(plan, GridPlan) else s.n_trials,
        space=_space_description(params), rows=rows, baseline=baseline,
        importances=imp, importance_note=note, figures=figures,
        data=[("trials", "../plots/sensitivity/trials.csv"),
              ("metrics", "../metrics/sensitivity.json")],
    )
    metrics = summary_metrics(summary)
    write_json(out.metrics, metrics)
    _write_text(out.report, render_sensitivity(summary))
    _log_parent(tracker, metrics, [out.report, out.metrics, *files])
    return metrics


def _log_parent(tracker: Tracker, metrics: dict[str, Any], files: list[Path]) -> None:
    step = metrics["n_complete"]
    numbers = {"best/val_top1": metrics["best_value"],
               "baseline/always_top1": metrics["baseline_always_top1"],
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


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


# -------------------------------------------------------------------------------------- stage


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
        url = resolve_storage_url(s.storage, root, override=storage)
    except TuningError as err:
        raise UserError(str(err)) from None
    teacher = Layout(root, params.data.dataset).pretrained(s.resolved_pair(params.runs).teacher)
    if not teacher.exists():
        raise UserError(f"{teacher} does not exist: run `dvc repro pretrain` first")
    job = TuneJob(params, root, url, study_name(params), progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _load_study(job)
    except TuningError as err:
        raise UserError(str(err)) from None
    tracker = tracker or make_tracker(params, root)
    with _parent_run(job, study, tracker) as parent_id:
        baseline = ensure_baseline(job, study, tracker)
        if s.workers == 1:
            work(job, study, tracker)
        else:
            run_workers(replace(job, parent_run_id=parent_id), s.workers)
        return write_outputs(job, study, baseline, tracker)
