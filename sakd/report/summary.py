"""`metrics/summary.json`: the one small metrics file `dvc exp show` and `dvc metrics diff` read.

    {"<teacher>-<student>": {"<distiller>": {"adaptive": 71.2, "always": 70.4, "delta": 0.8,
                                              "delta_ci_low": -0.4, "delta_ci_high": 2.0,
                                              "seeds": 3}}}

Last-epoch test top-1 (%), means over the seeds both strategies ran (paired by seed, so the
delta is the mean paired difference, with its 95% t-interval: sakd.report.stats; null bounds
when fewer than 2 seeds). Beside the pairs, `teacher_gap` holds each pair's teacher − student
alone (`never`) on validation top-1 (sakd.report.teacher_gap), the benchmark's first check.
"""

from __future__ import annotations

import math

from sakd.report.aggregate import distiller_sort_key, pairs_in_order
from sakd.report.records import EvaluateResults, StudentRun
from sakd.report.stats import paired_difference, summary_fields
from sakd.report.teacher_gap import teacher_gap_summary

TEACHER_GAP = "teacher_gap"  # a top-level key beside the pairs (no pair is named so)


def summary_metrics(results: EvaluateResults) -> dict[str, dict[str, dict[str, float | int]]]:
    """Adaptive vs always per pair and distiller; cells without both strategies are left out."""
    summary: dict[str, dict[str, dict[str, float | int]]] = {}
    for teacher, student in pairs_in_order(results.runs):
        in_pair = [r for r in results.runs if r.pair == (teacher, student)]
        for distiller in sorted({r.distiller for r in in_pair}, key=distiller_sort_key):
            entry = _paired_entry([r for r in in_pair if r.distiller == distiller])
            if entry is not None:
                summary.setdefault(f"{teacher}-{student}", {})[distiller] = entry
    gap = teacher_gap_summary(results)
    if gap:
        summary[TEACHER_GAP] = gap
    return summary


def _paired_entry(runs: list[StudentRun]) -> dict[str, float | int] | None:
    adaptive = {r.seed: r.top1 for r in runs if r.strategy == "adaptive"}
    always = {r.seed: r.top1 for r in runs if r.strategy == "always"}
    seeds = sorted(adaptive.keys() & always.keys())
    if not seeds:
        return None
    mean_adaptive = math.fsum(adaptive[s] for s in seeds) / len(seeds)
    mean_always = math.fsum(always[s] for s in seeds) / len(seeds)
    diff = paired_difference(adaptive, always)
    return {"adaptive": round(mean_adaptive, 4), "always": round(mean_always, 4),
            **summary_fields(diff)}
