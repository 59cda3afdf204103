"""The study's MLflow parent run: one per study, reopened by every re-run, worker and machine.

Its id is kept in the study (a user attr), chosen under the study lock, so workers starting
together agree on one parent; each trial is a nested run under it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import optuna

from sakd.config import flatten
from sakd.tracking import MemoryTracker, MLflowTracker, Tracker
from sakd.tuning.job import TuneJob
from sakd.tuning.locks import study_lock
from sakd.tuning.urls import display_storage

PARENT_RUN_ATTR = "mlflow_parent_run_id"


@contextlib.contextmanager
def parent_run(job: TuneJob, study: optuna.Study, tracker: Tracker) -> Iterator[str]:
    """Open (or reopen) the study's run; yields its id. With a shared tracking server every
    machine reopens the same run; another tracking store's id stays in the study."""
    with contextlib.ExitStack() as stack:
        with study_lock(job.storage_url, job.study):
            run_id = job.parent_run_id or study.user_attrs.get(PARENT_RUN_ATTR)
            if run_id and run_exists(tracker, run_id):
                rid = stack.enter_context(
                    tracker.run(job.experiment, job.study, {}, {}, run_id=run_id))
            else:
                rid = stack.enter_context(tracker.run(job.experiment, job.study,
                                                      parent_tags(job), parent_params(job)))
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


def parent_tags(job: TuneJob) -> dict[str, str]:
    s, params = job.cfg, job.params
    pair = s.resolved_pair(params.runs)
    return {"stage": "sensitivity", "dataset": params.data.dataset, "teacher": pair.teacher,
            "student": pair.student, "distiller": s.distiller, "optuna.study": job.study,
            "storage": display_storage(job.storage_url, job.root)}


def parent_params(job: TuneJob) -> dict[str, Any]:
    """The sensitivity section, less what may change while the study continues."""
    return {k: v for k, v in flatten(job.cfg, "sensitivity").items()
            if k.rsplit(".", 1)[-1] not in ("storage", "workers", "n_trials")}
