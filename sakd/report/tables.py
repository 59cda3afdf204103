"""The paper-style tables as plain data (headers + rows of cell text), one builder per table.

`paper` is an optional lookup (teacher, student, row, strategy, metric) -> the paper's number
(see `sakd.reference.paper_lookup`); when given, cells also show the paper's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sakd.reference import ROWS as PAPER_ROWS
from sakd.reference import STRATEGIES as PAPER_STRATEGIES
from sakd.reference import PaperLookup
from sakd.report.aggregate import (
    Pair,
    distillers_of,
    strategies_of,
    summarize_cells,
    summarize_no_distillation,
)
from sakd.report.cells import MISSING, delta_cell, summary_cell, value_cell
from sakd.report.records import EvaluateResults

STRATEGY_HEADERS = {
    "adaptive": "Adaptive", "always": "Always", "anti": "Anti", "random": "Rand", "never": "No",
}
ABLATION_ONLY = ("anti", "random", "never")
PAPER_ROW_NAMES = {"kd": "KD", "fitnet": "FitNet", "reviewkd": "ReviewKD"}  # else upper case


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


def row_label(distiller: str) -> str:
    return PAPER_ROW_NAMES.get(distiller, distiller.upper())


def pretrained_table(results: EvaluateResults) -> Table:
    """Every network trained alone (teachers, and students as their own baselines)."""
    rows = tuple(
        (arch, value_cell(acc.top1), value_cell(acc.top5))
        for arch, acc in sorted(results.teachers.items())
    )
    return Table(("Network", "Top-1", "Top-5"), rows)


def comparison_table(
    results: EvaluateResults, pair: Pair, metric: str = "top1", paper: PaperLookup | None = None
) -> Table:
    """Tables III-VI: rows T, S, KD, then each distiller; columns Stan. / Adap. / Delta."""
    teacher, student = pair
    look = _bind(paper, pair, metric)
    cells = summarize_cells((r for r in results.runs if r.pair == pair), metric)
    rows: list[tuple[str, ...]] = [
        _alone_row("T", results, teacher, metric, look("teacher", "never")),
        _alone_row("S", results, student, metric, look("student", "never")),
    ]
    alone = summarize_no_distillation(results.runs, pair, metric)
    if alone is not None:
        rows.append((f"S, distill stage (`never`; {student})", summary_cell(alone), MISSING,
                     MISSING))
    distillers = distillers_of(results.runs, pair, ("always", "adaptive"))
    for distiller in ["kd", *(d for d in distillers if d != "kd")]:
        stan = cells.get((teacher, student, distiller, "always"))
        adap = cells.get((teacher, student, distiller, "adaptive"))
        p_stan, p_adap = look(distiller, "always"), look(distiller, "adaptive")
        rows.append((
            row_label(distiller),
            summary_cell(stan, p_stan),
            summary_cell(adap, p_adap),
            delta_cell(stan, adap, p_stan, p_adap),
        ))
    return Table(("", "Stan.", "Adap.", "Δ"), tuple(rows))


def ablation_table(
    results: EvaluateResults, pair: Pair, paper: PaperLookup | None = None
) -> Table | None:
    """Table VII: rows = distillers, columns = the strategies run for this pair.

    None when no ablation strategy (anti, random, never) was run for the pair.
    """
    strategies = strategies_of(results.runs, pair)
    if not any(s in ABLATION_ONLY for s in strategies):
        return None
    teacher, student = pair
    look = _bind(paper, pair, "top1")
    cells = summarize_cells((r for r in results.runs if r.pair == pair), "top1")
    alone = summarize_no_distillation(results.runs, pair, "top1")
    distilling = [s for s in strategies if s != "never"]
    distillers = distillers_of(results.runs, pair, distilling) or distillers_of(
        results.runs, pair, ("never",)
    )
    rows = []
    for distiller in distillers:
        row = [row_label(distiller)]
        for strategy in strategies:
            key = (teacher, student, distiller, strategy)
            ours = alone if strategy == "never" else cells.get(key)
            row.append(summary_cell(ours, look(distiller, strategy)))
        rows.append(tuple(row))
    headers = ("", *(STRATEGY_HEADERS.get(s, s) for s in strategies))
    notes: tuple[str, ...] = ()
    if "never" in strategies:
        notes = ("No: the student trained without distillation (this pair's `never` runs, pooled "
                 "over distillers; n counts seeds).",)
    return Table(headers, tuple(rows), notes)


def _alone_row(
    label: str, results: EvaluateResults, arch: str, metric: str, paper: float | None
) -> tuple[str, ...]:
    """A network trained alone, from the pretrain stage (no seeds: one number)."""
    acc = results.teachers.get(arch)
    value = getattr(acc, metric) if acc else None
    return (f"{label}, pretrain stage ({arch})", value_cell(value, paper), MISSING, MISSING)


def _bind(
    paper: PaperLookup | None, pair: Pair, metric: str
) -> Callable[[str, str], float | None]:
    """A (row, strategy) -> paper number function for one pair and metric."""
    def look(row: str, strategy: str) -> float | None:
        if paper is None or row not in PAPER_ROWS or strategy not in PAPER_STRATEGIES:
            return None  # a name the paper never used has no paper cell
        return paper(pair[0], pair[1], row, strategy, metric)

    return look
