"""Parallel workers: separate processes sharing one storage run exactly n_trials, no more."""

from __future__ import annotations

import multiprocessing
import time

import optuna
import pytest
from optuna.trial import TrialState

from sakd.config import SearchSpaceConfig
from sakd.tuning.space import SearchPlan
from sakd.tuning.storage import open_storage, study_lock
from sakd.tuning.study import open_study
from sakd.tuning.workers import TrialClaimer, TrialSetting, run_worker

pytestmark = pytest.mark.slow  # end to end: worker processes share one Optuna storage

N_TRIALS = 8
NAME = "shared"
ATTRS = {"sakd_fingerprint": "f" * 12}


def slow_train(setting: TrialSetting) -> float:
    time.sleep(0.15)  # long enough for the two workers to interleave
    setting.report(1, setting.values["beta3"])
    return setting.values["beta3"]


def worker(url: str, barrier, results) -> None:
    """One worker process: what `sakd tune` does on each machine, minus the training."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(open_storage(url), NAME, ATTRS)
    plan = SearchPlan(SearchSpaceConfig(), N_TRIALS, "random", seed=0)
    claimer = TrialClaimer(study, plan, study_lock(url, NAME), log=lambda _: None)
    barrier.wait(timeout=60)  # start together, as two machines would
    done = run_worker(claimer, slow_train, {}, log=lambda _: None)
    results.put(done.get("COMPLETE", 0))


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_processes_on_one_storage_run_exactly_n_trials(tmp_path, kind):
    url = (f"journal:{tmp_path / 'optuna.journal'}" if kind == "journal"
           else f"sqlite:///{tmp_path / 'optuna.db'}")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    per_worker = sorted(results.get(timeout=5) for _ in procs)
    study = optuna.load_study(study_name=NAME, storage=open_storage(url))
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(N_TRIALS))  # none lost, none extra
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS
    assert sum(per_worker) == N_TRIALS and per_worker[0] >= 1  # both workers took a share
    workers = {(t.user_attrs["worker"]["pid"]) for t in trials}
    assert len(workers) == 2
    assert len({t.params["beta3"] for t in trials}) == N_TRIALS  # no point drawn twice
