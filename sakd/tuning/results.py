"""A study read back as the stage's outputs: trial rows, Fig. 4 sweeps, importances, and the
content of every file the stage writes (CSV tables, PNGs, the report, metrics). Writing them
(paths, atomic files, MLflow) is the caller's job.

Kept beside Optuna because `study.trials_dataframe()` knows no interrupted (uncounted) trials,
fixed hyper-parameters, workers or Fig. 4's one-at-a-time grid sweeps, and the stage's files
have a schema of their own (dvc.yaml's plots, metrics/sensitivity.json).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from sakd.config import Params
from sakd.tuning.baseline import NoiseBand
from sakd.tuning.plots import history_png, sweep_png
from sakd.tuning.report import (
    TRIAL_COLUMNS,
    StudySummary,
    TrialRow,
    render_sensitivity,
    summary_metrics,
    trial_rows,
)
from sakd.tuning.space import (
    HYPERPARAMS,
    LABELS,
    GridPlan,
    Value,
    base_values,
    fixed_values,
    plan_for,
)
from sakd.tuning.storage import display_storage
from sakd.tuning.study import TuneJob


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


FIG4_AXES = (("beta3", True), ("tau0", False))  # (axis, log scale): the two panels of Fig. 4


@dataclass(frozen=True)
class Table:
    rows: list[dict[str, Any]]
    columns: Sequence[str]


@dataclass
class SensitivityOutputs:
    """`plots`: file name -> Table (CSV) or PNG bytes, in writing order."""

    metrics: dict[str, Any]
    report: str
    plots: dict[str, Table | bytes] = field(default_factory=dict)


def space_description(params: Params) -> dict[str, str]:
    """How each hyper-parameter is varied (grid values, search range) or its fixed value."""
    s, base = params.sensitivity, base_values(params.distill)
    out = {}
    for name in HYPERPARAMS:
        if s.mode == "grid":
            values = getattr(s.grid, name)
            out[name] = (", ".join(map(str, values)) + f" (others at {base[name]})" if values
                         else f"{base[name]} (fixed)")
            continue
        rng = getattr(s.search, name)
        if name not in s.search.searched():
            out[name] = f"{base[name]} (fixed)"
        elif name == "schedule":
            out[name] = ", ".join(rng)
        else:
            out[name] = f"[{rng.low:g}, {rng.high:g}]" + (" (log)" if rng.log else "")
    return out


def baseline_columns(baseline: NoiseBand | None) -> dict[str, float | int | None]:
    """The baseline on every row of a Fig. 4 CSV: mean, sample sd (empty for one seed) and the
    number of seeds, so the data behind the band travels with the plot."""
    if baseline is None:
        return {"always_top1": None, "always_std": None, "always_seeds": 0}
    return {"always_top1": baseline.mean, "always_std": baseline.std,
            "always_seeds": baseline.n}


def sensitivity_outputs(job: TuneJob, study: optuna.Study, baseline: NoiseBand | None,
                        plots_link: str, metrics_link: str) -> SensitivityOutputs:
    """Everything the report shows, from the study as it is now; `plots_link` and
    `metrics_link` are the plots folder and metrics file relative to the report."""
    params, s = job.params, job.cfg
    plan = plan_for(params)
    base = base_values(params.distill)
    rows = trial_rows(study.get_trials(deepcopy=False), fixed_values(params, plan))
    pair = s.resolved_pair(params.runs)
    what = f"{params.data.dataset}: {pair.teacher} → {pair.student}, {s.distiller}"

    plots: dict[str, Table | bytes] = {
        "trials.csv": Table([r.as_dict() for r in rows], TRIAL_COLUMNS),
        "history.csv": Table(history(rows), ["trial", "val_top1", "best_val_top1"]),
        "history.png": history_png(study, f"Optimisation history ({what})", baseline),
    }
    figures = []
    for axis, log_x in FIG4_AXES:
        points = sweep(rows, axis, s.mode, base)
        always = baseline_columns(baseline)
        plots[f"{axis}.csv"] = Table([{axis: x, "val_top1": y, **always} for x, y in points],
                                     [axis, "val_top1", *always])
        rng = getattr(s.search, axis) if s.mode == "search" else None
        rng = rng if rng is not None and rng.active else None
        plots[f"{axis}.png"] = sweep_png(
            points, LABELS[axis], f"Fig. 4: sensitivity to {axis} ({what})", baseline,
            log_x=log_x, connect=s.mode == "grid", xlim=(rng.low, rng.high) if rng else None)
        figures.append((f"accuracy vs {axis}", f"{plots_link}/{axis}.png"))
    figures.append(("optimisation history", f"{plots_link}/history.png"))

    imp, note = importances(study)
    summary = StudySummary(
        study=job.study, storage=display_storage(job.storage_url, job.root), mode=s.mode,
        dataset=params.data.dataset, teacher=pair.teacher, student=pair.student,
        distiller=s.distiller, epochs=s.epochs, seed=s.seed,
        target=len(plan.points) if isinstance(plan, GridPlan) else s.n_trials,
        space=space_description(params), rows=rows, baseline=baseline,
        importances=imp, importance_note=note, figures=figures,
        data=[("trials", f"{plots_link}/trials.csv"), ("metrics", metrics_link)],
    )
    return SensitivityOutputs(summary_metrics(summary), render_sensitivity(summary), plots)
