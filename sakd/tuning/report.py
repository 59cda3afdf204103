"""reports/sensitivity.md and metrics/sensitivity.json from a study's rows (pure text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sakd.tuning.hyperparams import HYPERPARAMS, LABELS, Value
from sakd.tuning.results import TrialRow, best_row, state_counts


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
    baseline: float | None  # `always` strategy, same length and seed
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""
    figures: Sequence[tuple[str, str]] = ()  # (caption, path relative to the report)
    data: Sequence[tuple[str, str]] = ()  # (label, path relative to the report)


def summary_metrics(s: StudySummary) -> dict[str, Any]:
    """metrics/sensitivity.json: best value and parameters, counts, the baseline."""
    best = best_row(s.rows)
    counts = state_counts(s.rows)
    return {
        "study": s.study, "mode": s.mode, "dataset": s.dataset,
        "pair": f"{s.teacher}-{s.student}", "distiller": s.distiller,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": dict(best.values) if best else {},
        "baseline_always_top1": s.baseline,
        "gain_over_always": (best.value - s.baseline) if best and s.baseline is not None
        else None,
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
        _header(s), _best(s), _figures(s), _importance(s), _trials(s), _how_to_view(s),
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
    base = (f"Standard distillation (`always`, same epochs and seed): "
            f"**{s.baseline:.2f}%**." if s.baseline is not None else "")
    if best is None:
        return f"## Best\n\nNo complete trial yet. {base}".rstrip()
    gain = (f" ({best.value - s.baseline:+.2f} points over standard distillation)"
            if s.baseline is not None else "")
    params = ", ".join(f"{k} = {_fmt(best.values[k])}" for k in HYPERPARAMS)
    return (f"## Best\n\nTrial {best.number}: **{best.value:.2f}%**{gain} with {params}.\n\n"
            f"{base}").rstrip()


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
