"""Optuna workers in several processes on one PostgreSQL study (a real server, on loopback).

The exact-n_trials guarantee rests on the advisory lock (sakd/tuning/storage.py): 3 processes
claim trials at once and the study ends with exactly n_trials; a worker killed mid-trial leaves
a RUNNING trial that the next worker marks failed (no reason: it does not count) and redoes.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sakd.config import load_params
from sakd.tuning.study import TuneJob, study_name
from sakd.tuning.workers import FAIL_REASON, WORKER, spawn_workers
from tests import postgres_helpers as pg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with pg.running_cluster() as c:
        yield c


def make_job(default_params, cluster, database: str, n_trials: int) -> TuneJob:
    cluster.create_database(database)
    default_params["sensitivity"].update(n_trials=n_trials, epochs=1, pruner={"kind": "none"},
                                         sampler="random")
    params = load_params(default_params)
    return TuneJob(params, Path("."), cluster.url(database), study_name(params), progress=False)


def trials(job: TuneJob, *states: TrialState):
    """The study's trials ([] while no worker has created the study yet)."""
    try:
        study = optuna.load_study(study_name=job.study, storage=job.storage_url)
    except KeyError:
        return []
    return study.get_trials(deepcopy=False, states=states or None)


def test_three_worker_processes_end_with_exactly_n_trials(default_params, cluster):
    job = make_job(default_params, cluster, "optuna_exact", n_trials=7)
    assert "@" in job.storage_url and cluster.password not in job.storage_url  # env, not URL
    spawn_workers(pg.tune_worker, job, workers=3)
    done = trials(job)
    assert len(done) == 7 and all(t.state == TrialState.COMPLETE for t in done)
    workers = {t.user_attrs["worker"]["pid"] for t in done}
    assert len(workers) > 1  # the processes really shared the study
    spawn_workers(pg.tune_worker, job, workers=2)  # a rerun finds the budget spent
    assert len(trials(job)) == 7


def test_a_killed_workers_trial_is_recovered(default_params, cluster):
    job = make_job(default_params, cluster, "optuna_killed", n_trials=3)
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=pg.hanging_tune_worker, args=(job,))
    victim.start()
    try:
        # killed mid-trial: after its claim recorded the owner (a worker dying inside the
        # claim itself leaves an ownerless trial, released by the heartbeat timeout instead)
        pg.wait_for(lambda: [t for t in trials(job, TrialState.RUNNING)
                             if WORKER in t.user_attrs], 120, "the victim's claimed trial")
    finally:
        victim.kill()
        victim.join()
    spawn_workers(pg.tune_worker, job, workers=2)
    failed, complete = trials(job, TrialState.FAIL), trials(job, TrialState.COMPLETE)
    assert len(failed) == 1 and FAIL_REASON not in failed[0].user_attrs  # released, not counted
    assert failed[0].user_attrs["worker"]["pid"] == victim.pid
    assert len(complete) == 3
