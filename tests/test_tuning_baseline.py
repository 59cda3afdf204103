"""Each seed of the `always` baseline is trained once per study, however many workers start
together; a claim left by a dead worker is taken over."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import optuna
import pytest

from sakd.tuning.baseline import baseline_once, baselines_once, claim_attr, value_attr
from sakd.tuning.storage import open_storage, study_lock
from sakd.tuning.study import open_study
from sakd.tuning.workers import WorkerId

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
    first = baseline_once(study, study_lock(url, NAME), train, wait=False, seed=0, poll_s=0.1)
    final = baseline_once(study, study_lock(url, NAME), train, wait=True, seed=0, poll_s=0.1)
    results.put((first, final))


def _two_workers(target, url: str, log: Path) -> list:
    """Start two spawned workers together (a barrier), wait, and return what each reported."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, str(log), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    return [results.get(timeout=5) for _ in procs]


@pytest.mark.slow  # tuning: two worker processes on one storage
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_train_the_baseline_once(tmp_path, kind):
    url = (f"journal:{tmp_path / 'optuna.journal'}" if kind == "journal"
           else f"sqlite:///{tmp_path / 'optuna.db'}")
    _study(url)  # created once, as `sakd tune` does before starting workers
    log = tmp_path / "trained.log"
    outcomes = sorted(_two_workers(worker, url, log), key=str)
    assert len(Path(log).read_text().split()) == 1  # trained by one worker only
    assert [final for _, final in outcomes] == [42.0, 42.0]  # both report its value
    assert sorted(str(first) for first, _ in outcomes) == ["42.0", "None"]
    assert _study(url).user_attrs[value_attr(0)] == 42.0


def test_a_dead_workers_claim_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    study.set_user_attr(claim_attr(3), {**WorkerId(pid=dead.pid).as_attr(),
                                        "beat": time.time()})
    value = baseline_once(study, study_lock(url, NAME), lambda: 7.0, wait=True, seed=3,
                          poll_s=0.1)
    assert value == 7.0 and study.user_attrs[value_attr(3)] == 7.0


def test_a_live_claim_elsewhere_is_not_retrained_without_wait(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)
    study.set_user_attr(claim_attr(0), {**WorkerId(host="other-machine").as_attr(),
                                        "beat": time.time()})

    def never() -> float:
        raise AssertionError("trained although another worker holds the claim")

    assert baseline_once(study, study_lock(url, NAME), never, wait=False, seed=0) is None


SEEDS = [5, 6, 7]


def seeds_worker(url: str, log: str, barrier, results) -> None:
    """`sakd tune` with a 3-seed baseline: every seed it can claim first, then wait for all."""
    study = _study(url)

    def train(seed: int) -> float:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {seed}\n")
        time.sleep(0.5)  # long enough for the other worker to find the claim
        return 40.0 + seed

    barrier.wait(timeout=60)
    lock = study_lock(url, NAME)
    first = baselines_once(study, lock, train, SEEDS, wait=False, poll_s=0.1)
    final = baselines_once(study, lock, train, SEEDS, wait=True, poll_s=0.1)
    results.put((first, final))


@pytest.mark.slow  # tuning: two worker processes on one storage
def test_two_workers_train_each_baseline_seed_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study(url)
    log = tmp_path / "trained.log"
    outcomes = _two_workers(seeds_worker, url, log)
    trained = sorted(int(line.split()[1]) for line in log.read_text().splitlines())
    assert trained == SEEDS  # every seed once, whichever worker trained it
    expected = {5: 45.0, 6: 46.0, 7: 47.0}
    assert [final for _, final in outcomes] == [expected, expected]
    # without waiting, the workers together saw every seed: none was skipped by both
    assert set().union(*(first for first, _ in outcomes)) == set(SEEDS)
    assert {k: v for k, v in _study(url).user_attrs.items() if k.startswith(
        "baseline_always_top1")} == {value_attr(s): 40.0 + s for s in SEEDS}


def test_each_seed_has_its_own_value_and_claim(tmp_path):
    """A stored seed is not retrained, a dead claim on another seed is taken over, and a value
    for one seed never stands in for another."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)
    study.set_user_attr(value_attr(0), 90.0)
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    study.set_user_attr(claim_attr(1), {**WorkerId(pid=dead.pid).as_attr(),
                                        "beat": time.time()})
    trained = []

    def train(seed: int) -> float:
        trained.append(seed)
        return 80.0 + seed

    values = baselines_once(study, study_lock(url, NAME), train, [0, 1, 2], wait=True,
                            poll_s=0.1)
    assert values == {0: 90.0, 1: 81.0, 2: 82.0}
    assert trained == [1, 2]


def test_a_failed_seed_frees_its_claim_for_another_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study(url)

    def boom(seed: int) -> float:
        raise RuntimeError(f"seed {seed} diverged")

    with pytest.raises(RuntimeError, match="seed 4 diverged"):
        baselines_once(study, study_lock(url, NAME), boom, [4, 5], wait=False)
    assert study.user_attrs[claim_attr(4)] is None and claim_attr(5) not in study.user_attrs
    assert baselines_once(study, study_lock(url, NAME), lambda s: 1.0 * s, [4, 5],
                          wait=False) == {4: 4.0, 5: 5.0}
