"""The paper's reported numbers (Section IV, Tables III-VIII) as data, to print beside ours.

    paper_result("cifar100", "resnet56", "resnet20", "pkt", "adaptive")  # -> 71.56

The numbers live in `paper_results.yaml` (plain YAML, comments note the paper's own
inconsistencies); this module only reads and indexes them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from sakd.registry import UnknownNameError

PAPER_DATASETS = ("cifar100", "tiny_imagenet", "imagenet")
DISTILLERS = ("kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ft", "nst", "crd")
# "teacher"/"student": the T and S rows (each network trained alone, stored under "never").
ROWS = ("teacher", "student", *DISTILLERS)
# Table VIII's two extra settings: the teacher co-trained with the student.
STRATEGIES = (
    "always", "adaptive", "anti", "random", "never",
    "trainable_teacher_scratch", "trainable_teacher_pretrained",
)
METRICS = ("top1", "top5")
# Lookup order when a cell appears in several tables (the main tables win over the ablation).
TABLES = ("III", "IV", "V", "VI", "VII", "VIII")

PaperLookup = Callable[[str, str, str, str, str], float | None]
"""(teacher, student, row, strategy, metric) -> the paper's number for one dataset, or None."""


@dataclass(frozen=True)
class PaperCell:
    """One printed number: table, dataset, pair, metric, row (distiller, teacher or student)."""

    table: str
    dataset: str
    teacher: str
    student: str
    metric: str
    row: str
    strategy: str
    value: float


def load_paper_tables() -> dict[str, Any]:
    """The YAML document as plain data (`tables.<roman>.pairs[...]`)."""
    text = resources.files(__package__).joinpath("paper_results.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@functools.cache
def paper_cells() -> tuple[PaperCell, ...]:
    """Every printed cell, in table order; names are checked against our vocabulary."""
    tables = load_paper_tables()["tables"]
    return tuple(cell for name in TABLES for cell in _table_cells(name, tables[name]))


def paper_result(
    dataset: str, teacher: str, student: str, distiller: str, strategy: str, metric: str = "top1"
) -> float | None:
    """The paper's number for one cell, or None where the paper has none.

    `distiller` is one of DISTILLERS, or "teacher"/"student" for the T/S rows (use strategy
    "never" for those: the network trained alone). A dataset the paper did not use gives None;
    an unknown distiller, strategy or metric name raises UnknownNameError (a typo must not
    look like a missing cell).
    """
    _check("distiller", distiller, ROWS)
    _check("strategy", strategy, STRATEGIES)
    _check("metric", metric, METRICS)
    return _index().get((dataset, teacher, student, metric, distiller, strategy))


def paper_lookup(dataset: str) -> PaperLookup | None:
    """`paper_result` bound to one dataset, or None when the paper did not use that dataset."""
    if dataset not in PAPER_DATASETS:
        return None
    return functools.partial(paper_result, dataset)


@functools.cache
def _index() -> dict[tuple[str, str, str, str, str, str], float]:
    index: dict[tuple[str, str, str, str, str, str], float] = {}
    for c in paper_cells():
        index.setdefault((c.dataset, c.teacher, c.student, c.metric, c.row, c.strategy), c.value)
    return index


def _table_cells(table: str, body: dict[str, Any]) -> Iterator[PaperCell]:
    for pair in body["pairs"]:
        _check("dataset", pair["dataset"], PAPER_DATASETS, where=f"Table {table}")
        for metric in METRICS:
            for row, by_strategy in pair.get(metric, {}).items():
                _check("row", row, ROWS, where=f"Table {table}")
                for strategy, value in by_strategy.items():
                    _check("strategy", strategy, STRATEGIES, where=f"Table {table}")
                    yield PaperCell(
                        table, pair["dataset"], pair["teacher"], pair["student"],
                        metric, row, strategy, float(value),
                    )


def _check(kind: str, name: str, valid: tuple[str, ...], where: str = "") -> None:
    if name not in valid:
        place = f" in {where}" if where else ""
        raise UnknownNameError(f"unknown {kind} {name!r}{place}; valid: {', '.join(valid)}")


__all__ = [
    "DISTILLERS", "METRICS", "PAPER_DATASETS", "ROWS", "STRATEGIES", "TABLES",
    "PaperCell", "PaperLookup", "load_paper_tables", "paper_cells", "paper_lookup",
    "paper_result",
]
