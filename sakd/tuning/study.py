"""One `sakd tune` job, its study (created or continued) and the study's MLflow parent run.

Kept beside Optuna because: `create_study(load_if_exists=True)` continues any study of that
name, whatever objective produced its trials. Here the objective's settings (data, the distill
section, trial length, training seed, mode, and what Optuna cannot change inside a study: the
schedule choices and log scales) are hashed into a fingerprint; the default study name ends
with it, so changing them starts a new study while more trials, another sampler or wider
ranges continue the same one, and a study named explicitly must match it (else TuningError,
nothing changed). And Optuna's MLflowCallback logs one flat run per trial per process: here
every worker and re-run nests its trials under one parent run whose id the study keeps.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection

from sakd.config import Params, SensitivityConfig, config_hash, flatten, validate
from sakd.tracking import MemoryTracker, MLflowTracker, Tracker
from sakd.tuning import TuningError
from sakd.tuning.space import create_pruner
from sakd.tuning.storage import display_storage, open_storage, study_lock

METRIC_NAME = "val_top1"
FINGERPRINT = "sakd_fingerprint"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
STRATEGY = "adaptive"  # the objective is the spot-adaptive distillation


@dataclass(frozen=True)
class TuneJob:
    """Everything a worker needs (picklable: spawned worker processes get a copy)."""

    params: Params
    root: Path  # the project root: data, the teacher checkpoint, relative storage files
    storage_url: str  # absolute (see storage.resolve_storage_url)
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


def study_fingerprint(params: Params) -> str:
    """A hash of everything that makes trial values comparable within one study."""
    s = params.sensitivity
    search = s.mode == "search"
    frozen = {"schedule_choices": s.search.schedule if search else None,
              "log": {k: getattr(s.search, k).log for k in ("beta3", "tau0", "tau_min")
                      if search and getattr(s.search, k).active}}
    return config_hash(params.data, params.distill, s.resolved_pair(params.runs), s.distiller,
                       s.epochs, s.seed, s.mode, frozen)


def study_name(params: Params) -> str:
    s = params.sensitivity
    pair = s.resolved_pair(params.runs)
    return s.study_name or (f"sakd-{params.data.dataset}-{pair.teacher}-{pair.student}-"
                            f"{s.distiller}-{s.mode}-{study_fingerprint(params)[:8]}")


def study_attrs(params: Params, fingerprint: str) -> dict[str, Any]:
    """Shown by optuna-dashboard next to the study: what the objective is."""
    s = params.sensitivity
    pair = s.resolved_pair(params.runs)
    return {
        FINGERPRINT: fingerprint, "dataset": params.data.dataset, "teacher": pair.teacher,
        "student": pair.student, "distiller": s.distiller, "strategy": STRATEGY,
        "mode": s.mode, "epochs_per_trial": s.epochs, "seed": s.seed,
        "objective": "validation top-1 (%) after the last epoch",
    }


def open_study(storage, name: str, attrs: dict[str, Any], pruner=None) -> optuna.Study:
    """Load `name` (checking it is the same objective) or create it; never resets trials.

    `pruner` None means no pruning (Optuna's own default would be a median pruner).
    """
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                pruner=pruner or optuna.pruners.NopPruner(),
                                load_if_exists=True)  # the stored direction wins: checked below
    _check_same_objective(study, name, attrs)
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    if study.metric_names != [METRIC_NAME]:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, still the API
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAME])
    return study


def open_job_study(job: TuneJob) -> optuna.Study:
    """The job's study in its storage, with the configured pruner; TuningError when the
    storage or the study does not fit."""
    return open_study(open_storage(job.storage_url), job.study,
                      study_attrs(job.params, study_fingerprint(job.params)),
                      create_pruner(job.cfg))


def _check_same_objective(study: optuna.Study, name: str, attrs: dict[str, Any]) -> None:
    if len(study.directions) != 1 or study.direction != StudyDirection.MAXIMIZE:
        raise TuningError(f"study {name!r} exists but does not maximise one objective; "
                          f"choose another sensitivity.study_name")
    stored = study.user_attrs.get(FINGERPRINT)
    if stored is not None and stored != attrs[FINGERPRINT]:
        changed = [k for k, v in attrs.items() if k != FINGERPRINT and study.user_attrs.get(k)
                   != v] or ["data, distill settings or the schedule choices / log scales"]
        raise TuningError(
            f"study {name!r} was run with other objective settings (differs in: "
            f"{', '.join(changed)}); its trials would not be comparable. Set "
            f"sensitivity.study_name to a new name (or null for an automatic one); the "
            f"existing study was left as it is"
        )
    if stored is None and study.get_trials(deepcopy=False):
        raise TuningError(f"study {name!r} exists with trials that sakd did not create; choose "
                          f"another sensitivity.study_name")


@contextlib.contextmanager
def parent_run(job: TuneJob, study: optuna.Study, tracker: Tracker) -> Iterator[str]:
    """Open (or reopen) the study's run; yields its id. Its id is chosen under the study lock
    and kept in the study, so workers starting together agree on one parent; with a shared
    tracking server every machine reopens the same run."""
    with contextlib.ExitStack() as stack:
        with study_lock(job.storage_url, job.study):
            run_id = job.parent_run_id or study.user_attrs.get(PARENT_RUN_ATTR)
            if run_id and run_exists(tracker, run_id):
                rid = stack.enter_context(
                    tracker.run(job.experiment, job.study, {}, {}, run_id=run_id))
            else:
                s, params = job.cfg, job.params
                pair = s.resolved_pair(params.runs)
                tags = {"stage": "sensitivity", "dataset": params.data.dataset,
                        "teacher": pair.teacher, "student": pair.student,
                        "distiller": s.distiller, "optuna.study": job.study,
                        "storage": display_storage(job.storage_url, job.root)}
                # the section, less what may change while the study continues
                logged = {k: v for k, v in flatten(s, "sensitivity").items()
                          if k.rsplit(".", 1)[-1] not in ("storage", "workers", "n_trials")}
                rid = stack.enter_context(tracker.run(job.experiment, job.study, tags, logged))
                if PARENT_RUN_ATTR not in study.user_attrs:
                    study.set_user_attr(PARENT_RUN_ATTR, rid)
        yield rid


def run_exists(tracker: Tracker, run_id: str) -> bool:
    """Whether `run_id` is a run of this tracker's store (a stale id is simply not reused)."""
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
