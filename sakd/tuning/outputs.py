"""The content of the study's outputs: CSV tables, Fig. 4 and history PNGs, the report text and
metrics. Writing them (paths, atomic files, MLflow) is the caller's job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from sakd.config import Params
from sakd.tuning.band import NoiseBand
from sakd.tuning.hyperparams import HYPERPARAMS, LABELS, base_values
from sakd.tuning.job import TuneJob
from sakd.tuning.plans import GridPlan, fixed_values, plan_for
from sakd.tuning.plots import history_png, sweep_png
from sakd.tuning.report import StudySummary, render_sensitivity, summary_metrics
from sakd.tuning.results import TRIAL_COLUMNS, history, importances, sweep, trial_rows
from sakd.tuning.urls import display_storage

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
