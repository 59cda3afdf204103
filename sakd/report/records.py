"""Typed records for the evaluate stage's metrics (`metrics/evaluate/<dataset>.json`).

Parsing checks every field once, so the table code can trust its input and a malformed file
fails with a message naming the run and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ReportInputError(ValueError):
    """An input file the report reads does not have the agreed format."""


@dataclass(frozen=True)
class Accuracy:
    """Last-epoch test accuracy (%) of a network trained alone (the paper's T and S rows)."""

    top1: float
    top5: float
    val_top1: float | None = None  # last epoch, validation split (older files lack it)


@dataclass(frozen=True)
class StudentRun:
    """One distillation run: a (teacher, student, distiller, strategy, seed) cell's result."""

    key: str
    teacher: str
    student: str
    distiller: str
    strategy: str
    seed: int
    top1: float
    top5: float
    val_top1: float  # last epoch, validation split
    best_val_top1: float  # best epoch by validation
    best_epoch: int
    epochs: int

    @property
    def pair(self) -> tuple[str, str]:
        return (self.teacher, self.student)

    def metric(self, name: str) -> float:
        return {"top1": self.top1, "top5": self.top5}[name]


@dataclass(frozen=True)
class EvaluateResults:
    """Everything the report tables need: pretrained networks and distillation runs."""

    teachers: dict[str, Accuracy]
    runs: tuple[StudentRun, ...]


_RUN_TEXT = ("teacher", "student", "distiller", "strategy")
_RUN_INT = ("seed", "best_epoch", "epochs")
_RUN_PERCENT = ("top1", "top5", "val_top1", "best_val_top1")


def parse_evaluate(data: Mapping[str, Any], source: str = "evaluate metrics") -> EvaluateResults:
    """Validate and type the evaluate JSON; `source` names the file in error messages."""
    if not isinstance(data, Mapping):
        raise ReportInputError(f"{source}: expected a JSON object, got {type(data).__name__}")
    for section in ("teachers", "students"):
        if not isinstance(data.get(section), Mapping):
            raise ReportInputError(f"{source}: missing or malformed section {section!r}")
    teachers = {
        arch: Accuracy(**{m: _percent(entry, m, f"{source}: teachers[{arch!r}]")
                          for m in ("top1", "top5", "val_top1")
                          if m != "val_top1" or m in entry})
        for arch, entry in data["teachers"].items()
    }
    runs = tuple(
        _parse_run(key, entry, f"{source}: students[{key!r}]")
        for key, entry in data["students"].items()
    )
    return EvaluateResults(teachers=teachers, runs=runs)


def _parse_run(key: str, entry: Any, where: str) -> StudentRun:
    if not isinstance(entry, Mapping):
        raise ReportInputError(f"{where}: expected an object")
    fields: dict[str, Any] = {"key": key}
    for name in _RUN_TEXT:
        value = _field(entry, name, where)
        if not isinstance(value, str) or not value:
            raise ReportInputError(f"{where}: {name!r} must be a non-empty string, got {value!r}")
        fields[name] = value
    for name in _RUN_INT:
        value = _field(entry, name, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReportInputError(f"{where}: {name!r} must be an integer, got {value!r}")
        fields[name] = value
    for name in _RUN_PERCENT:
        fields[name] = _percent(entry, name, where)
    return StudentRun(**fields)


def _percent(entry: Any, name: str, where: str) -> float:
    value = _field(entry, name, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ReportInputError(f"{where}: {name!r} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def _field(entry: Any, name: str, where: str) -> Any:
    if not isinstance(entry, Mapping) or name not in entry:
        raise ReportInputError(f"{where}: missing field {name!r}")
    return entry[name]
