"""Seeds -> mean +- std per table cell, and the stable orders tables are printed in."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sakd.report.records import StudentRun

# The paper's row order (Tables III-V), then DKD (beyond the paper); names it does not know
# follow, sorted.
DISTILLER_ORDER = ("kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ft", "nst", "crd", "dkd")
# Table VII's column order.
STRATEGY_ORDER = ("adaptive", "always", "anti", "random", "never")

Pair = tuple[str, str]
CellKey = tuple[str, str, str, str]
"""(teacher, student, distiller, strategy)"""


@dataclass(frozen=True)
class Summary:
    """Mean over seeds; `std` is the sample std (ddof=1), None with a single seed."""

    mean: float
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("cannot summarize an empty list of values")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(mean, None, n)
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(mean, math.sqrt(var), n)


def distiller_sort_key(name: str) -> tuple[int, str]:
    known = name in DISTILLER_ORDER
    return (DISTILLER_ORDER.index(name) if known else len(DISTILLER_ORDER), name)


def strategy_sort_key(name: str) -> tuple[int, str]:
    known = name in STRATEGY_ORDER
    return (STRATEGY_ORDER.index(name) if known else len(STRATEGY_ORDER), name)


def pairs_in_order(runs: Iterable[StudentRun]) -> list[Pair]:
    """Teacher-student pairs in the order they first appear (the evaluate file's order)."""
    return list(dict.fromkeys(run.pair for run in runs))


def distillers_of(runs: Iterable[StudentRun], pair: Pair, strategies: Iterable[str]) -> list[str]:
    """Distillers run for `pair` under any of `strategies`, in the paper's order."""
    wanted = set(strategies)
    names = {r.distiller for r in runs if r.pair == pair and r.strategy in wanted}
    return sorted(names, key=distiller_sort_key)


def strategies_of(runs: Iterable[StudentRun], pair: Pair) -> list[str]:
    return sorted({r.strategy for r in runs if r.pair == pair}, key=strategy_sort_key)


def summarize_cells(runs: Iterable[StudentRun], metric: str = "top1") -> dict[CellKey, Summary]:
    """One Summary per (teacher, student, distiller, strategy), over that cell's seeds."""
    groups: dict[CellKey, list[float]] = {}
    for r in runs:
        groups.setdefault((r.teacher, r.student, r.distiller, r.strategy), []).append(
            r.metric(metric)
        )
    return {key: summarize(values) for key, values in groups.items()}


def summarize_no_distillation(
    runs: Iterable[StudentRun], pair: Pair, metric: str = "top1"
) -> Summary | None:
    """The pair's `never` runs pooled over distillers (the distiller is irrelevant when nothing
    is distilled): runs sharing a seed are averaged first, so n counts distinct seeds."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        if r.pair == pair and r.strategy == "never":
            by_seed.setdefault(r.seed, []).append(r.metric(metric))
    if not by_seed:
        return None
    return summarize([math.fsum(v) / len(v) for _, v in sorted(by_seed.items())])
