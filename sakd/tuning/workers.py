"""Workers: claim trials so any number of processes and machines end with exactly the trials
asked for, run each with a heartbeat, and record how it ended.

Kept beside Optuna because: `study.optimize(n_trials=)` and MaxTrialsCallback count per
process or after a trial ends, so N workers overshoot by up to N-1; `optimize(n_jobs=N)` runs
threads sharing one GIL and torch pool. Here a claim, under the study lock, (1) fails trials
whose worker is gone, (2) counts the trials that use up the budget, (3) asks the plan for the
next sampler and (4) creates the trial, so no trial is lost or run twice. Optuna's heartbeat
(RDB only, inside `optimize` only) never beats for trials claimed with `ask` or on a journal.

What counts toward `n_trials`: complete, pruned and running (alive) trials, and trials that
failed in the objective (they carry a `fail_reason`); waiting (enqueued) ones do not. A trial
whose worker died (killed `dvc repro`, lost machine) or was stopped is marked FAIL without a
reason and does not count, so re-running the stage redoes it. A worker is gone when it ran on
this host and its process no longer exists, or when its heartbeat is older than
`stale_after_s` (any host).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from sakd.tracking import StoppedEarly
from sakd.tuning import TuningError
from sakd.tuning.space import TrialPlan, Value, fixed_values, plan_for
from sakd.tuning.storage import study_lock
from sakd.tuning.study import TuneJob

FAIL_REASON = "fail_reason"  # set when the objective raised: the trial counts
INTERRUPTED = "interrupted"  # set when this worker was stopped: the trial does not count
WORKER = "worker"
HEARTBEAT = "heartbeat"
STALE_AFTER_S = 600.0
HEARTBEAT_S = 30.0
Fatal = tuple[type[BaseException], ...]
Reporter = Callable[[int, float], None]


@dataclass(frozen=True)
class WorkerId:
    """Who runs a trial: host and process id (to detect dead local workers) and a token."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def as_attr(self) -> dict:
        return {"host": self.host, "pid": self.pid, "token": self.token}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner_gone(owner: object, beat: float, me: WorkerId, stale_after_s: float) -> bool:
    """Whether another worker's claim `owner` ({"host", "pid", "token"}) is dead: its local
    process has exited, or its last `beat` is older than `stale_after_s`."""
    owner = owner if isinstance(owner, dict) else {}
    if owner.get("token") == me.token:
        return False
    if owner.get("host") == me.host and isinstance(owner.get("pid"), int) \
            and not pid_alive(owner["pid"]):
        return True
    return time.time() - beat > stale_after_s


def counts_toward_budget(trial: FrozenTrial) -> bool:
    if trial.state == TrialState.FAIL:
        return FAIL_REASON in trial.user_attrs
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _is_stale(trial: FrozenTrial, me: WorkerId, stale_after_s: float) -> bool:
    beat = trial.user_attrs.get(HEARTBEAT)
    if not isinstance(beat, int | float):
        beat = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return trial.state == TrialState.RUNNING and owner_gone(
        trial.user_attrs.get(WORKER), beat, me, stale_after_s)


class TrialClaimer:
    """Hands out the study's remaining trials to one worker, one at a time."""

    def __init__(self, study: optuna.Study, plan: TrialPlan, lock: AbstractContextManager,
                 worker: WorkerId | None = None, stale_after_s: float = STALE_AFTER_S,
                 log: Callable[[str], None] = print) -> None:
        self.study, self.plan, self.lock, self.log = study, plan, lock, log
        self.worker, self.stale_after_s = worker or WorkerId(), stale_after_s

    def claim(self) -> optuna.Trial | None:
        """A new RUNNING trial with its parameters already drawn, or None when done."""
        with self.lock:
            trials = self.study.get_trials(deepcopy=False)
            stale = [t for t in trials if _is_stale(t, self.worker, self.stale_after_s)]
            for t in stale:
                self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                host = (t.user_attrs.get(WORKER) or {}).get("host", "?")
                self.log(f"trial {t.number}: its worker ({host}) is gone; marked failed, it "
                         f"will be run again")
            if stale:
                trials = self.study.get_trials(deepcopy=False)
            counted = [t for t in trials if counts_toward_budget(t)]
            sampler = self.plan.next_sampler(counted, number=len(trials))
            if sampler is None:
                return None
            self.study.sampler = sampler
            trial = self.study.ask(self.plan.distributions())
            trial.set_user_attr(WORKER, self.worker.as_attr())
            trial.set_user_attr(HEARTBEAT, time.time())
            return trial


class Heartbeat(AbstractContextManager):
    """`with Heartbeat(trial):` stamps the trial's `heartbeat` user attr every `interval_s`
    (anything with `set_user_attr` works), so other workers can tell it is alive."""

    def __init__(self, trial, interval_s: float = HEARTBEAT_S) -> None:
        self.trial, self.interval_s = trial, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sakd-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # finished meanwhile, or a storage hiccup
                self.trial.set_user_attr(HEARTBEAT, time.time())


@dataclass(frozen=True)
class TrialSetting:
    """What the training callable gets: the trial's full hyper-parameters and a reporter."""

    number: int
    values: dict[str, Value]  # beta3, tau0, tau_min, schedule (tuned or the distill value)
    report: Reporter  # report(epoch, val_top1); raises optuna.TrialPruned to stop the run


TrainFn = Callable[[TrialSetting], float]


class PrunedRun(optuna.TrialPruned, StoppedEarly):
    """Optuna sees a pruned trial; the trial's MLflow run ends KILLED (stopped on purpose)."""


def epoch_reporter(trial: optuna.Trial) -> Reporter:
    """Report the epoch's validation top-1; raise TrialPruned when the pruner says so."""

    def report(epoch: int, value: float) -> None:
        trial.report(value, step=epoch)
        if trial.should_prune():
            raise PrunedRun(f"pruned after epoch {epoch} (val top-1 {value:.2f}%)")

    return report


def run_trial(study: optuna.Study, trial: optuna.Trial, train: TrainFn,
              fixed: Mapping[str, Value], fatal: Fatal = (),
              log: Callable[[str], None] = print) -> TrialState:
    """Train one trial and tell the study how it ended. A trial that raises is FAIL with its
    reason and the study goes on; `fatal` errors (bad input: the next trial would fail the
    same way) and interrupts stop the worker, the trial left uncounted."""
    setting = TrialSetting(trial.number, {**fixed, **trial.params}, epoch_reporter(trial))
    state, value = TrialState.FAIL, None
    try:
        value = float(train(setting))
        if not math.isfinite(value):
            raise ValueError(f"the objective is {value}")
        state = TrialState.COMPLETE
    except optuna.TrialPruned as why:
        log(f"trial {trial.number}: {why}")
        state = TrialState.PRUNED
    except (*fatal, KeyboardInterrupt, SystemExit) as err:
        reason = f"{type(err).__name__}: {err}" if isinstance(err, fatal) else type(err).__name__
        _mark(trial, INTERRUPTED, reason)
        _tell(study, trial, TrialState.FAIL, log)
        raise
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        _mark(trial, FAIL_REASON, reason[:2000])
        _mark(trial, "fail_traceback", traceback.format_exc()[-4000:])
        log(f"trial {trial.number} failed ({reason}); the study goes on")
    return _tell(study, trial, state, log, value)


def _mark(trial: optuna.Trial, key: str, value: str) -> None:
    with contextlib.suppress(UpdateFinishedTrialError):  # closed meanwhile by another worker
        trial.set_user_attr(key, value)


def _tell(study, trial, state: TrialState, log, value: float | None = None) -> TrialState:
    try:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except UpdateFinishedTrialError:
        log(f"trial {trial.number} was already closed by another worker (no heartbeat); "
            f"its result is dropped and the trial is run again")
        return TrialState.FAIL
    return state


def run_worker(claimer: TrialClaimer, train: TrainFn, fixed: Mapping[str, Value],
               fatal: Fatal = (), log: Callable[[str], None] = print,
               heartbeat_s: float = HEARTBEAT_S) -> Counter[str]:
    """Claim and run trials until the study has all of them; returns states run here."""
    done: Counter[str] = Counter()
    while (trial := claimer.claim()) is not None:
        with Heartbeat(trial, heartbeat_s):
            done[run_trial(claimer.study, trial, train, fixed, fatal, log).name] += 1
    return done


def work(job: TuneJob, study: optuna.Study, train: TrainFn, fatal: Fatal = ()) -> Counter[str]:
    """Claim and run trials of the study in this process until it has all of them."""
    plan = plan_for(job.params)
    claimer = TrialClaimer(study, plan, study_lock(job.storage_url, job.study))
    done = run_worker(claimer, train, fixed_values(job.params, plan),
                      fatal=(*fatal, TuningError))
    if done:
        print(f"worker {os.getpid()}: " + ", ".join(f"{n} {s.lower()}" for s, n in done.items()))
    return done


def spawn_workers(entry: Callable[[TuneJob], None], job: TuneJob, workers: int,
                  fatal: Fatal = ()) -> None:
    """Run `entry(job)` (a module-level function) in `workers` spawned processes sharing the
    cores; TuningError names the ones that failed (their finished trials are kept)."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_process_main, args=(entry, job, threads, fatal),
                         name=f"sakd-tune-{i}") for i in range(workers)]
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
        raise TuningError(f"tuning workers failed: {', '.join(failed)}; see their messages "
                          f"above. Finished trials are kept: re-run to complete the study")


def _process_main(entry: Callable[[TuneJob], None], job: TuneJob, threads: int,
                  fatal: Fatal) -> None:
    """A worker process: its share of the cores, quiet Optuna; bad input exits 2."""
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        entry(job)
    except (*fatal, TuningError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
