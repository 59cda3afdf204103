"""Tables of paired differences against `always` (standard distillation), one row per
(distiller, strategy): the mean difference, its 95% interval, n and a verdict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sakd.report.aggregate import Pair, distillers_of, strategies_of
from sakd.report.cells import MISSING, fmt_delta
from sakd.report.records import EvaluateResults, StudentRun
from sakd.report.stats import PairedDifference, paired_difference, verdict
from sakd.report.tables import Table, row_label

BASELINE = "always"


def by_seed(runs: Iterable[StudentRun], distiller: str, strategy: str,
            metric: str = "top1") -> dict[int, float]:
    return {r.seed: r.metric(metric) for r in runs
            if r.distiller == distiller and r.strategy == strategy}


def interval_text(diff: PairedDifference | None) -> str:
    if diff is None or diff.low is None:
        return MISSING
    return f"[{fmt_delta(diff.low)}, {fmt_delta(diff.high)}]"


def paired_table(results: EvaluateResults, pair: Pair,
                 strategies: Sequence[str] | None = None) -> Table | None:
    """`strategy` − always per distiller, paired by seed (last-epoch test top-1). Default
    strategies: every one run for the pair except always; None when always was not run."""
    runs = [r for r in results.runs if r.pair == pair]
    ran = strategies_of(results.runs, pair)
    if BASELINE not in ran:
        return None
    wanted = [s for s in (strategies or ran) if s != BASELINE and s in ran]
    rows = []
    for distiller in distillers_of(results.runs, pair, (BASELINE,)):
        base = by_seed(runs, distiller, BASELINE)
        for strategy in wanted:
            diff = paired_difference(by_seed(runs, distiller, strategy), base)
            rows.append((
                row_label(distiller), f"{strategy} − {BASELINE}",
                fmt_delta(diff.mean) if diff else MISSING, interval_text(diff),
                str(diff.n) if diff else "0", verdict(diff, strategy, BASELINE),
            ))
    if not rows:
        return None
    return Table(("", "Difference", "Mean Δ", "95% CI", "n", "Verdict"), tuple(rows))
