"""Does the teacher have something to teach? Its validation top-1 against the student trained
alone (`never`, every seed), as a difference with a 95% interval over the student's seeds.

Read on validation (like every selection), so the check that picks a benchmark's pair never
looks at the test split. The benchmark's bar (docs/benchmark.md): >= 2 points, interval above 0.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from sakd.report.aggregate import Pair, pairs_in_order
from sakd.report.cells import MISSING, fmt_delta, fmt_value
from sakd.report.records import EvaluateResults
from sakd.report.stats import PairedDifference, paired_difference, summary_fields
from sakd.report.tables import Table

BAR = 2.0  # points of validation top-1 the benchmark asks of every teacher


def student_alone_val(results: EvaluateResults, pair: Pair) -> dict[int, float]:
    """Per seed, the `never` runs' last-epoch val top-1 (mean over distillers, which repeat it)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in results.runs:
        if r.pair == pair and r.strategy == "never":
            by_seed[r.seed].append(r.val_top1)
    return {seed: math.fsum(v) / len(v) for seed, v in by_seed.items()}


def teacher_gap(results: EvaluateResults, pair: Pair) -> PairedDifference | None:
    """teacher val top-1 − student-alone val top-1 over the student's seeds (None without one
    of them); the teacher is one network, so the interval is over the student's seeds."""
    teacher = results.teachers.get(pair[0])
    alone = student_alone_val(results, pair)
    if teacher is None or teacher.val_top1 is None or not alone:
        return None
    return paired_difference({s: teacher.val_top1 for s in alone}, alone)


def gap_verdict(diff: PairedDifference | None) -> str:
    if diff is None:
        return "not measured (needs the teacher's val top-1 and `never` runs)"
    if diff.low is None:
        return "one student seed: no interval"
    if diff.low >= BAR:
        return f"teacher ahead by more than {BAR:g} points (interval above it)"
    if diff.detectable and diff.mean > 0:
        return f"teacher ahead, but not clearly by {BAR:g} points"
    return "no detectable gap: little for distillation to transfer"


def teacher_gap_table(results: EvaluateResults) -> Table | None:
    rows = []
    for pair in pairs_in_order(results.runs):
        diff = teacher_gap(results, pair)
        if diff is None:
            continue
        alone = list(student_alone_val(results, pair).values())
        spread = f" ± {fmt_value(statistics.stdev(alone))}" if len(alone) > 1 else ""
        interval = (MISSING if diff.low is None or diff.high is None
                    else f"[{fmt_delta(diff.low)}, {fmt_delta(diff.high)}]")
        rows.append((f"{pair[0]} → {pair[1]}", fmt_value(results.teachers[pair[0]].val_top1),
                     f"{fmt_value(statistics.fmean(alone))}{spread} ({len(alone)})",
                     fmt_delta(diff.mean), interval, gap_verdict(diff)))
    if not rows:
        return None
    return Table(("Pair", "Teacher val", "Student alone val (n)", "Gap", "95% CI", "Verdict"),
                 tuple(rows))


def teacher_gap_summary(results: EvaluateResults) -> dict[str, dict[str, float | int | None]]:
    """For metrics/summary.json: {"<teacher>-<student>": {"delta", "delta_ci_low", ...}}."""
    out = {}
    for pair in pairs_in_order(results.runs):
        diff = teacher_gap(results, pair)
        if diff is not None:
            out[f"{pair[0]}-{pair[1]}"] = summary_fields(diff)
    return out
