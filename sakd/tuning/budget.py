"""Claiming trials so that any number of workers end with exactly the trials asked for.

Under the study lock a worker (1) fails trials whose worker is gone, (2) counts the trials that
use up the budget, (3) asks the plan for the next sampler and (4) creates the trial. Nothing
is created outside the lock, so the count cannot be stale: no trial is lost or run twice.

What counts toward `n_trials`: complete, pruned and running (alive) trials, and trials that
failed in the objective (they carry a `fail_reason`). Waiting (enqueued) trials do not: the
next claim runs them. A trial whose worker died
(killed `dvc repro`, lost machine) is marked FAIL without a reason and does not count, so
re-running the stage redoes it. A worker is gone when it ran on this host and its process no
longer exists, or when its heartbeat is older than `stale_after_s` (any host).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from sakd.tuning.plans import TrialPlan

FAIL_REASON = "fail_reason"  # set by the runner when the objective raised: the trial counts
INTERRUPTED = "interrupted"  # set when this worker was stopped: the trial does not count
WORKER = "worker"
HEARTBEAT = "heartbeat"
STALE_AFTER_S = 600.0
_COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def counts_toward_budget(trial: FrozenTrial) -> bool:
    if trial.state == TrialState.FAIL:
        return FAIL_REASON in trial.user_attrs
    return trial.state in _COUNTED


@dataclass(frozen=True)
class WorkerId:
    """Who runs a trial: host and process id (to detect dead local workers) and a token."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def as_attr(self) -> dict:
        return {"host": self.host, "pid": self.pid, "token": self.token}

    def label(self) -> str:
        return f"{self.host}:{self.pid}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _last_beat(trial: FrozenTrial) -> float:
    beat = trial.user_attrs.get(HEARTBEAT)
    if isinstance(beat, int | float):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else 0.0


def is_stale(trial: FrozenTrial, me: WorkerId, now: float, stale_after_s: float) -> bool:
    """A RUNNING trial whose worker is gone (see the module docstring)."""
    if trial.state != TrialState.RUNNING:
        return False
    owner = trial.user_attrs.get(WORKER) or {}
    if owner.get("token") == me.token:
        return False
    local = owner.get("host") == me.host and isinstance(owner.get("pid"), int)
    if local and not pid_alive(owner["pid"]):
        return True
    return now - _last_beat(trial) > stale_after_s


class TrialClaimer:
    """Hands out the study's remaining trials to one worker, one at a time.

    Why not `study.optimize(n_trials=)` or MaxTrialsCallback: both count per process or after
    a trial ends, so N workers overshoot by up to N-1 trials; a claim here counts and creates
    the trial under the study lock, and also releases dead workers' trials.
    """

    def __init__(
        self,
        study: optuna.Study,
        plan: TrialPlan,
        lock: AbstractContextManager,
        worker: WorkerId | None = None,
        stale_after_s: float = STALE_AFTER_S,
        log=print,
    ) -> None:
        self.study, self.plan, self.lock = study, plan, lock
        self.worker = worker or WorkerId()
        self.stale_after_s = stale_after_s
        self.log = log

    def claim(self) -> optuna.Trial | None:
        """A new RUNNING trial with its parameters already drawn, or None when done."""
        with self.lock:
            trials = self._release_stale(self.study.get_trials(deepcopy=False))
            counted = [t for t in trials if counts_toward_budget(t)]
            sampler = self.plan.next_sampler(counted, number=len(trials))
            if sampler is None:
                return None
            self.study.sampler = sampler
            trial = self.study.ask(self.plan.distributions())
            trial.set_user_attr(WORKER, self.worker.as_attr())
            trial.set_user_attr(HEARTBEAT, time.time())
            return trial

    def _release_stale(self, trials: Sequence[FrozenTrial]) -> Sequence[FrozenTrial]:
        now = time.time()
        stale = [t for t in trials if is_stale(t, self.worker, now, self.stale_after_s)]
        for t in stale:
            self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            owner = (t.user_attrs.get(WORKER) or {}).get("host", "?")
            self.log(f"trial {t.number}: its worker ({owner}) is gone; marked failed, it will "
                     f"be run again")
        return self.study.get_trials(deepcopy=False) if stale else trials
