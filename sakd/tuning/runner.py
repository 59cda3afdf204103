"""Run claimed trials: train, report per-epoch accuracy for pruning, record the outcome.

The training itself is a callable from the caller (the pipeline builds a distillation run);
this module knows only Optuna. A trial that raises is recorded as FAIL with its reason and the
study goes on; errors listed as `fatal` (bad input: the next trial would fail the same way)
and interrupts stop the worker, leaving the trial uncounted so a re-run redoes it.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from sakd.tracking import StoppedEarly
from sakd.tuning.budget import FAIL_REASON, INTERRUPTED, TrialClaimer
from sakd.tuning.heartbeat import HEARTBEAT_S, Heartbeat
from sakd.tuning.hyperparams import Value

Reporter = Callable[[int, float], None]


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


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    train: TrainFn,
    fixed: Mapping[str, Value],
    fatal: tuple[type[BaseException], ...] = (),
    log: Callable[[str], None] = print,
) -> TrialState:
    """Train one trial and tell the study how it ended; returns the final state."""
    values = {**fixed, **trial.params}
    setting = TrialSetting(trial.number, values, epoch_reporter(trial))
    try:
        value = float(train(setting))
        if not math.isfinite(value):
            raise ValueError(f"the objective is {value}")
    except optuna.TrialPruned as why:
        log(f"trial {trial.number}: {why}")
        return _tell(study, trial, TrialState.PRUNED, log)
    except fatal as err:
        _mark(trial, INTERRUPTED, f"{type(err).__name__}: {err}")
        _tell(study, trial, TrialState.FAIL, log)
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        _mark(trial, INTERRUPTED, type(err).__name__)
        _tell(study, trial, TrialState.FAIL, log)
        raise
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        _mark(trial, FAIL_REASON, reason[:2000])
        _mark(trial, "fail_traceback", traceback.format_exc()[-4000:])
        log(f"trial {trial.number} failed ({reason}); the study goes on")
        return _tell(study, trial, TrialState.FAIL, log)
    return _tell(study, trial, TrialState.COMPLETE, log, value)


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


def run_worker(
    claimer: TrialClaimer,
    train: TrainFn,
    fixed: Mapping[str, Value],
    fatal: tuple[type[BaseException], ...] = (),
    log: Callable[[str], None] = print,
    heartbeat_s: float = HEARTBEAT_S,
) -> Counter[str]:
    """Claim and run trials until the study has all of them; returns states run here."""
    done: Counter[str] = Counter()
    while (trial := claimer.claim()) is not None:
        with Heartbeat(trial, heartbeat_s):
            state = run_trial(claimer.study, trial, train, fixed, fatal, log)
        done[state.name] += 1
    return done
