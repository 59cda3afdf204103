"""Create or continue the study: one per (dataset, pair, distiller, objective settings).

The objective's settings (data, the distill section, trial length, training seed, mode, and
what Optuna cannot change inside a study: the schedule choices and log scales) are hashed into
a fingerprint. The default study name ends with it, so changing them starts a new study while
re-running with more trials, another sampler or wider ranges continues the same one. A study
named explicitly must match its stored fingerprint, else TuningError (nothing is changed).
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.study import StudyDirection

from sakd.config import Params, config_hash
from sakd.tuning.errors import TuningError
from sakd.tuning.job import TuneJob
from sakd.tuning.pruners import create_pruner
from sakd.tuning.storage import open_storage

METRIC_NAME = "val_top1"
FINGERPRINT = "sakd_fingerprint"
STRATEGY = "adaptive"  # the objective is the spot-adaptive distillation


def study_fingerprint(params: Params) -> str:
    """A hash of everything that makes trial values comparable within one study."""
    s = params.sensitivity
    pair = s.resolved_pair(params.runs)
    space = s.search
    frozen = {
        "schedule_choices": space.schedule if s.mode == "search" else None,
        "log": {k: getattr(space, k).log for k in ("beta3", "tau0", "tau_min")
                if s.mode == "search" and getattr(space, k).active},
    }
    return config_hash(params.data, params.distill, pair, s.distiller, s.epochs, s.seed, s.mode,
                       frozen)


def default_study_name(params: Params, fingerprint: str) -> str:
    s = params.sensitivity
    pair = s.resolved_pair(params.runs)
    return (f"sakd-{params.data.dataset}-{pair.teacher}-{pair.student}-{s.distiller}-"
            f"{s.mode}-{fingerprint[:8]}")


def study_name(params: Params) -> str:
    return params.sensitivity.study_name or default_study_name(params, study_fingerprint(params))


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
    """The job's study in its storage, with the configured pruner (searches only: every grid
    point runs in full); TuningError when the storage or the study does not fit."""
    s = job.cfg
    pruner = (create_pruner(s.pruner.kind, s.pruner.n_startup_trials, s.pruner.n_warmup_steps,
                            s.epochs) if s.mode == "search" else None)
    fingerprint = study_fingerprint(job.params)
    return open_study(open_storage(job.storage_url), job.study,
                      study_attrs(job.params, fingerprint), pruner)


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
