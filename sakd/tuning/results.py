"""Read a finished (or partly finished) study back as plain rows for tables, CSVs and plots."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sakd.tuning.budget import FAIL_REASON, INTERRUPTED, WORKER, counts_toward_budget
from sakd.tuning.hyperparams import HYPERPARAMS, Value

TRIAL_COLUMNS = ["number", "state", "value", *HYPERPARAMS, "duration_s", "last_epoch",
                 "worker", "reason"]


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, INTERRUPTED (worker stopped: not counted), RUNNING
    value: float | None  # final val top-1; a pruned trial's last reported value
    values: dict[str, Value]  # every tuned hyper-parameter (searched or the distill value)
    duration_s: float | None
    last_epoch: int | None
    worker: str
    reason: str

    def as_dict(self) -> dict:
        return {"number": self.number, "state": self.state, "value": self.value,
                **self.values, "duration_s": self.duration_s, "last_epoch": self.last_epoch,
                "worker": self.worker, "reason": self.reason}


def trial_rows(trials: Sequence[FrozenTrial], fixed: Mapping[str, Value]) -> list[TrialRow]:
    return [_row(t, fixed) for t in sorted(trials, key=lambda t: t.number)]


def _row(t: FrozenTrial, fixed: Mapping[str, Value]) -> TrialRow:
    state = t.state.name
    reason = str(t.user_attrs.get(FAIL_REASON, ""))
    if t.state == TrialState.FAIL and not counts_toward_budget(t):
        state = "INTERRUPTED"
        reason = str(t.user_attrs.get(INTERRUPTED, "its worker stopped before the end"))
    value = t.value if t.state == TrialState.COMPLETE else None
    if t.state == TrialState.PRUNED and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    owner = t.user_attrs.get(WORKER) or {}
    duration = t.duration.total_seconds() if t.duration else None
    return TrialRow(
        number=t.number, state=state, value=value, values={**fixed, **t.params},
        duration_s=duration, last_epoch=max(t.intermediate_values, default=None),
        worker=f"{owner.get('host', '?')}:{owner.get('pid', '?')}" if owner else "", reason=reason,
    )


def state_counts(rows: Sequence[TrialRow]) -> dict[str, int]:
    counts = Counter(r.state for r in rows)
    return {s: counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL", "INTERRUPTED",
                                          "RUNNING")}


def best_row(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The complete trial with the highest value (the earliest on a tie)."""
    complete = [r for r in rows if r.state == "COMPLETE"]
    return max(complete, key=lambda r: (r.value, -r.number), default=None)


def history(rows: Sequence[TrialRow]) -> list[dict[str, float]]:
    """Complete trials in order with the best value so far (the optimisation history)."""
    out, best = [], float("-inf")
    for r in rows:
        if r.state == "COMPLETE":
            best = max(best, r.value)
            out.append({"trial": r.number, "val_top1": r.value, "best_val_top1": best})
    return out


def sweep(rows: Sequence[TrialRow], axis: str, mode: str,
          base: Mapping[str, Value]) -> list[tuple[float, float]]:
    """(value of `axis`, val top-1) of complete trials, sorted by the axis.

    Grid: only the trials of that sweep (every other hyper-parameter at its base value), as in
    Fig. 4. Search: every complete trial (the others vary too: a scatter, not a curve).
    """
    points = []
    for r in rows:
        if r.state != "COMPLETE":
            continue
        if mode == "grid" and any(r.values[k] != base[k] for k in base if k != axis):
            continue
        points.append((float(r.values[axis]), float(r.value)))
    return sorted(points)


MIN_TRIALS_FOR_IMPORTANCE = 3


def importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances (PED-ANOVA), or {} and why they are not available."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials "
                    f"({len(complete)} so far)")
    if len({t.value for t in complete}) == 1:
        return {}, "every complete trial has the same value, so no parameter explains it"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study)), ""
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return {}, f"not computable from these trials ({err})"
