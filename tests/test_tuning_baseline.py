"""The `always` baseline is trained once per study, however many workers start together; a
claim left by a dead worker is taken over."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import optuna
import pytest

from sakd.tuning.baseline import BASELINE_ATTR, CLAIM_ATTR, baseline_once
from sakd.tuning.budget import WorkerId
from sakd.tuning.locks import study_lock
from sakd.tuning.storage import open_storage
from sakd.tuning.study import open_study

NAME = "shared"
ATTRS = {"sakd_fingerprint": "f" * 12}


def _study(url: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return open_study(open_storage(url), NAME, ATTRS)


def worker(url: str, log: str, barrier, results) -> None:
    """What each `sakd tune` does: the baseline first (no wait), trials, then wait for it."""
    study = _study(url)

    def train() -> float:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough for the other worker to find the claim
        return 42.0

    barrier.wait(timeout=60)
    first = baseline_once(study, study_lock(url, NAME), train, wait=False, poll_s=0.1)
    final = baseline_once(study, study_lock(url, NAME), train, wait=True, poll_s=0.1)
    results.put((first, final))


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_train_the_baseline_once(tmp_path, kind):
    url = (f"journal:{tmp_path / 'optuna.journal'}" if kind == "journal"
           else f"sqlite:///{tmp_path / 'optuna.db'}")
    _study(url)  # created once, as `sakd tune` does before starting workers
    log = tmp_path / "trained.log"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, str(log), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    outcomes = sorted((results.get(timeout=5) for _ in procs), key=str)
    assert len(Path(log).read_text().split()) == 1  # trained by one worker only
    assert [final for _, final in outcomes] == [42.0, 42.0]  # both report its value
    assert sorted(str(first) for first, _ in outcomes) == ["42.0", "None"]
    assert _study(url).user_attrs[BASELINE_ATTR] == 42.0


def test_a_dead_workers_claim_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    study.set_user_attr(CLAIM_ATTR, {**WorkerId(pid=dead.pid).as_attr(), "beat": time.time()})
    value = baseline_once(study, study_lock(url, NAME), lambda: 7.0, wait=True, poll_s=0.1)
    assert value == 7.0 and study.user_attrs[BASELINE_ATTR] == 7.0


def test_a_live_claim_elsewhere_is_not_retrained_without_wait(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)
    study.set_user_attr(CLAIM_ATTR, {**WorkerId(host="other-machine").as_attr(),
                                     "beat": time.time()})

    def never() -> float:
        raise AssertionError("trained although another worker holds the claim")

    assert baseline_once(study, study_lock(url, NAME), never, wait=False) is None
