"""The objective's training: one shortened distillation per trial, in a nested MLflow run.

Kept beside Optuna because the objective is the project's: the caller (the pipeline) passes a
`Build` callable that assembles a distillation run, and this adds the trial's config, per-epoch
reports for pruning, MLflow tags, and selection on validation only (no trial reads the test
split: `test=None`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna

from sakd.config import DistillConfig
from sakd.tracking import Tracker
from sakd.train.loop import RunSpec, TrainingJob, fit
from sakd.tuning.baseline import NoiseBand, baselines_once
from sakd.tuning.space import Value, trial_config
from sakd.tuning.storage import study_lock
from sakd.tuning.study import STRATEGY, TuneJob
from sakd.tuning.workers import Reporter, TrainFn, TrialSetting

# build(distill config, strategy, checkpoint path, training seed) -> a run of the study's pair,
# with its tracking tags and params
Build = Callable[[DistillConfig, str, Path, int], TrainingJob]


def distill_trial(
    job: TuneJob, tracker: Tracker, build: Build, values: dict[str, Value], strategy: str,
    name: str, tags: dict[str, str], report: Reporter | None, seed: int,
) -> float:
    """One shortened distillation in a nested MLflow run; returns its last val top-1 (the test
    split is never read by a trial)."""
    cfg = trial_config(job.params.distill, values, job.cfg.epochs)
    with tempfile.TemporaryDirectory(prefix="sakd-tune-") as tmp:
        d = build(cfg, strategy, Path(tmp) / "run.pt", seed)

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
        history = fit(replace(d, on_epoch_end=on_epoch_end, test=None), tracker, run,
                      on_finish=on_finish, log=lambda line: print(f"[{name}] {line}"))
    return float(history[-1]["val/top1"])


def make_trainer(job: TuneJob, tracker: Tracker, build: Build) -> TrainFn:
    """The objective's training: spot-adaptive distillation with the trial's values."""

    def train(setting: TrialSetting) -> float:
        return distill_trial(job, tracker, build, setting.values, STRATEGY,
                             name=f"trial-{setting.number}",
                             tags={"optuna.trial": str(setting.number)}, report=setting.report,
                             seed=job.cfg.seed)

    return train


def ensure_baseline(job: TuneJob, study: optuna.Study, tracker: Tracker, build: Build,
                    wait: bool = False) -> NoiseBand | None:
    """Fig. 4's dashed line and noise band: the `always` strategy, same epochs, trained with
    each of `sensitivity.baseline_seeds` seeds once per study however many workers start
    (sakd.tuning.baseline). Run first, it also checks that data and teacher load. None: no
    baseline configured, or (wait=False) some seed is still being trained by another worker;
    wait=True (after the trials) waits for every seed."""
    seeds = job.cfg.baseline_seed_list()
    if not seeds:
        return None

    def train(seed: int) -> float:
        return distill_trial(job, tracker, build, {}, "always",
                             name=f"baseline-always-seed{seed}",
                             tags={"optuna.role": "baseline", "baseline.seed": str(seed)},
                             report=None, seed=seed)

    values = baselines_once(study, study_lock(job.storage_url, job.study), train, seeds, wait)
    return NoiseBand.from_values(values) if len(values) == len(seeds) else None
