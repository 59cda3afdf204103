"""A study's trials as rows, and reports/sensitivity.md and metrics/sensitivity.json from them.

Kept beside Optuna because the report is the stage's own: trials judged against the `always`
baseline's noise band, interrupted (uncounted) trials told apart from failed ones, and a
metrics schema that dvc.yaml and the tests read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sakd.tuning.baseline import NoiseBand
from sakd.tuning.space import HYPERPARAMS, LABELS, Value
from sakd.tuning.workers import FAIL_REASON, INTERRUPTED, WORKER, counts_toward_budget

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



@dataclass(frozen=True)
class StudySummary:
    study: str
    storage: str  # redacted
    mode: str  # search | grid
    dataset: str
    teacher: str
    student: str
    distiller: str
    epochs: int
    seed: int
    target: int  # search: n_trials; grid: number of points
    space: dict[str, str]  # hyper-parameter -> how it is varied (or its fixed value)
    rows: list[TrialRow]
    baseline: NoiseBand | None  # `always` strategy, same length, over its seeds
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""
    figures: Sequence[tuple[str, str]] = ()  # (caption, path relative to the report)
    data: Sequence[tuple[str, str]] = ()  # (label, path relative to the report)


def summary_metrics(s: StudySummary) -> dict[str, Any]:
    """metrics/sensitivity.json: best value and parameters, counts, the baseline (mean, sample
    sd, number of seeds; sd null for one seed)."""
    best = best_row(s.rows)
    counts = state_counts(s.rows)
    mean = s.baseline.mean if s.baseline is not None else None
    return {
        "study": s.study, "mode": s.mode, "dataset": s.dataset,
        "pair": f"{s.teacher}-{s.student}", "distiller": s.distiller,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": dict(best.values) if best else {},
        "baseline_always_top1": mean,
        "baseline_always_std": s.baseline.std if s.baseline is not None else None,
        "baseline_seeds": s.baseline.n if s.baseline is not None else 0,
        "gain_over_always": (best.value - mean) if best and mean is not None else None,
        "n_target": s.target, "n_complete": counts["COMPLETE"], "n_pruned": counts["PRUNED"],
        "n_failed": counts["FAIL"], "n_interrupted": counts["INTERRUPTED"],
        "importance": s.importances,
    }


def _fmt(value: Value | float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def render_sensitivity(s: StudySummary) -> str:
    return "\n\n".join(part for part in (
        _header(s), _best(s), _noise_floor(s), _figures(s), _importance(s), _trials(s),
        _how_to_view(s),
    ) if part) + "\n"


def _header(s: StudySummary) -> str:
    counts = state_counts(s.rows)
    what = ("Optuna search" if s.mode == "search"
            else "grid: one hyper-parameter at a time, the others at their distill values")
    space = "\n".join(f"| {LABELS[k]} | {s.space[k]} |" for k in HYPERPARAMS)
    return (
        f"# Sensitivity to β3 and the Gumbel temperature τ (Fig. 4)\n\n"
        f"Study `{s.study}` in `{s.storage}` ({what}). Objective: validation top-1 (%) after "
        f"{s.epochs} epoch{'s' * (s.epochs != 1)} of spot-adaptive distillation, "
        f"{s.teacher} → {s.student} with {s.distiller} on {s.dataset}, training seed {s.seed}"
        f" (the same for every trial).\n\n"
        f"Trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
        f"{counts['FAIL']} failed of {s.target}"
        + (f"; {counts['INTERRUPTED']} interrupted (not counted, re-run)"
           if counts["INTERRUPTED"] else "")
        + (f"; {counts['RUNNING']} running" if counts["RUNNING"] else "")
        + ".\n\n| hyper-parameter | values |\n|---|---|\n" + space
    )


def _best(s: StudySummary) -> str:
    best = best_row(s.rows)
    base = _baseline_sentence(s.baseline)
    if best is None:
        return f"## Best\n\nNo complete trial yet. {base}".rstrip()
    gain = (f" ({best.value - s.baseline.mean:+.2f} points over standard distillation)"
            if s.baseline is not None else "")
    params = ", ".join(f"{k} = {_fmt(best.values[k])}" for k in HYPERPARAMS)
    return (f"## Best\n\nTrial {best.number}: **{best.value:.2f}%**{gain} with {params}.\n\n"
            f"{base}").rstrip()


def _baseline_sentence(b: NoiseBand | None) -> str:
    """Standard distillation's value: the mean over its seeds, each seed's value listed."""
    if b is None:
        return ""
    per_seed = ", ".join(f"{v:.2f}" for v in b.values)
    seeds = ", ".join(map(str, b.seeds))
    if b.std is None:
        return (f"Standard distillation (`always`, same epochs, seed {seeds}): "
                f"**{b.mean:.2f}%**.")
    return (f"Standard distillation (`always`, same epochs, seeds {seeds}): "
            f"**{b.mean:.2f} ± {b.std:.2f}%** (mean ± sample sd over {b.n} seeds: {per_seed}).")


def _trial_list(rows: Sequence[TrialRow]) -> str:
    return ", ".join(f"{r.number} ({r.value:.2f}%)" for r in rows) or "none"


def _noise_floor(s: StudySummary) -> str:
    """Which complete trials lie outside the `always` baseline's seed spread, in plain words:
    the figure's band made explicit, so small differences are not read as findings."""
    b = s.baseline
    if b is None:
        return ("## Noise floor\n\nNo `always` baseline was trained "
                "(`sensitivity.baseline_seeds: 0`), so there is no seed spread to compare the "
                "trials with: no difference between them is shown to be more than noise.")
    if b.low is None or b.high is None:
        return ("## Noise floor\n\nThe `always` baseline was trained with one seed, so its "
                "spread over seeds is undefined and Fig. 4 draws no band. Set "
                "`sensitivity.baseline_seeds` to 2 or more to see which differences exceed "
                "seed noise; until then no difference here is evidence on its own.")
    complete = [r for r in s.rows if r.state == "COMPLETE"]
    sides = {side: [r for r in complete if b.side(r.value) == side]
             for side in ("above", "inside", "below")}
    return (
        f"## Noise floor\n\nThe shaded band of Fig. 4 is the `always` baseline's mean ± 1 "
        f"sample sd over {b.n} seeds: {b.low:.2f}–{b.high:.2f}%. It is a yardstick of seed "
        f"noise (each trial ran one seed), not a significance test.\n\n"
        f"- Above the band (better than standard distillation by more than seed noise): "
        f"{_trial_list(sides['above'])}.\n"
        f"- Below the band (worse by more than seed noise): {_trial_list(sides['below'])}.\n"
        f"- Inside the band: {_trial_list(sides['inside'])}. Differences inside it, between "
        f"these trials or against standard distillation, are not evidence."
    )


def _figures(s: StudySummary) -> str:
    if not s.figures and not s.data:
        return ""
    out = ["## Figures"]
    out += [f"![{caption}]({path})" for caption, path in s.figures]
    if s.data:
        out.append("Data: " + ", ".join(f"[{label}]({path})" for label, path in s.data))
    return "\n\n".join(out)


def _importance(s: StudySummary) -> str:
    if not s.importances:
        return f"## Parameter importance\n\nNot available: {s.importance_note or 'no data'}."
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in s.importances.items())
    return ("## Parameter importance\n\nOptuna's PED-ANOVA importance of each tuned "
            "hyper-parameter (sums to 1; few trials make it rough).\n\n"
            "| hyper-parameter | importance |\n|---|---:|\n" + rows)


def _trials(s: StudySummary) -> str:
    head = "| # | state | val top-1 (%) | " + " | ".join(HYPERPARAMS) + " | time (s) | note |"
    sep = ("|---:|---|---:|" + "".join("---|" if k == "schedule" else "---:|" for k in HYPERPARAMS)
           + "---:|---|")
    lines = [
        f"| {r.number} | {r.state.lower()} | {_fmt(r.value)} | "
        + " | ".join(_fmt(r.values.get(k)) for k in HYPERPARAMS)
        + f" | {_fmt(r.duration_s, 3)} | {r.reason.splitlines()[0][:80] if r.reason else ''} |"
        for r in s.rows
    ]
    return "## Trials\n\n" + "\n".join([head, sep, *lines])


def _how_to_view(s: StudySummary) -> str:
    return ("## Explore\n\n"
            f"- `optuna-dashboard {s.storage}`: the study, its trials and Optuna's plots.\n"
            "- `mlflow ui --backend-store-uri sqlite:///mlflow.db`: the study is one parent "
            "run of the `sensitivity` experiment; each trial is a nested run with its "
            "per-epoch accuracy and routing probabilities.")
