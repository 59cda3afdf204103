"""Per-spot distillation probability curves (Fig. 3): parse one run's route.csv, average seeds.

A route table has a header `epoch,<spot>...` (paper numbering, logits last) and one row per
epoch holding the fraction of training samples distilled at each spot (0..1).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sakd.report.records import ReportInputError

_TOLERANCE = 1e-6  # float noise around the [0, 1] bounds


@dataclass(frozen=True)
class RouteCurve:
    """p_distill per epoch and spot; `n_seeds[i]` = how many runs averaged into epoch i."""

    spots: tuple[str, ...]
    epochs: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]  # values[i][j]: epoch i, spot j
    n_seeds: tuple[int, ...]

    def series(self, spot: str) -> list[float]:
        j = self.spots.index(spot)
        return [row[j] for row in self.values]


@dataclass(frozen=True)
class RouteFigure:
    """A rendered curve as the report links it (paths relative to the report)."""

    teacher: str
    student: str
    distiller: str
    image: str
    data: str
    n_seeds: int
    summaries: tuple[str, ...] = ()  # one line per run: its late-epoch fractions


def parse_route_csv(text: str, source: str = "route.csv") -> RouteCurve:
    """One run's curve; errors name `source`, the line and what was expected."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0].strip() != "epoch" or len(header) < 2:
        raise ReportInputError(f"{source}: expected a header 'epoch,<spot>,...', got {header!r}")
    spots = tuple(h.strip() for h in header[1:])
    epochs: list[int] = []
    values: list[tuple[float, ...]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ReportInputError(
                f"{source}:{line_no}: expected {len(header)} columns, got {len(row)}"
            )
        epochs.append(_parse_epoch(row[0], source, line_no))
        values.append(tuple(_parse_probability(v, source, line_no) for v in row[1:]))
    if len(set(epochs)) != len(epochs):
        raise ReportInputError(f"{source}: an epoch appears twice")
    return RouteCurve(spots, tuple(epochs), tuple(values), (1,) * len(epochs))


def average_routes(curves: Sequence[RouteCurve], sources: Sequence[str] = ()) -> RouteCurve:
    """Mean over runs per epoch. Runs may stop at different epochs: each epoch averages the
    runs that reached it (recorded in `n_seeds`). All runs must name the same spots."""
    if not curves:
        raise ValueError("no route curves to average")
    spots = curves[0].spots
    for i, curve in enumerate(curves):
        if curve.spots != spots:
            name = sources[i] if i < len(sources) else f"curve {i}"
            raise ReportInputError(f"{name}: spots {curve.spots} differ from {spots}")
    per_epoch: dict[int, list[tuple[float, ...]]] = {}
    for curve in curves:
        for epoch, row in zip(curve.epochs, curve.values, strict=True):
            per_epoch.setdefault(epoch, []).append(row)
    epochs = tuple(sorted(per_epoch))
    values = tuple(
        tuple(math.fsum(col) / len(col) for col in zip(*per_epoch[e], strict=True))
        for e in epochs
    )
    return RouteCurve(spots, epochs, values, tuple(len(per_epoch[e]) for e in epochs))


def late_fractions(curve: RouteCurve, last: int = 3) -> dict[str, float]:
    """Mean fraction distilled per spot over the last `last` epochs: where the policy ended up
    (Fig. 3 in one line), which tells at a glance whether adaptive = always (all near 1)."""
    rows = curve.values[-last:]
    return {spot: math.fsum(r[j] for r in rows) / len(rows) for j, spot in enumerate(curve.spots)}


def late_summary(label: str, curve: RouteCurve, last: int = 3) -> str:
    """`label`: spot1 1.00, spot2 0.97, logits 1.00 (mean of epochs 8-10)."""
    fractions = late_fractions(curve, last)
    shown = curve.epochs[-last:]
    where = ", ".join(f"{spot} {value:.2f}" for spot, value in fractions.items())
    span = f"epoch {shown[0]}" if len(shown) == 1 else f"epochs {shown[0]}-{shown[-1]}"
    saturated = " — distills everywhere: adaptive = always here" if min(
        fractions.values()) >= 0.99 else ""
    return f"{label}: {where} (mean of {span}){saturated}"


def route_csv_text(curve: RouteCurve) -> str:
    """The curve in the route.csv layout (`epoch,<spot>...`), for `dvc plots show`."""
    lines = [",".join(("epoch", *curve.spots))]
    for epoch, row in zip(curve.epochs, curve.values, strict=True):
        lines.append(",".join((str(epoch), *(f"{v:.6f}" for v in row))))
    return "\n".join(lines) + "\n"


def _parse_epoch(text: str, source: str, line_no: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise ReportInputError(f"{source}:{line_no}: epoch {text!r} is not a whole number")
    return int(value)


def _parse_probability(text: str, source: str, line_no: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReportInputError(f"{source}:{line_no}: {text!r} is not a number") from None
    if not -_TOLERANCE <= value <= 1 + _TOLERANCE:
        raise ReportInputError(f"{source}:{line_no}: {value} is not a probability in [0, 1]")
    return min(max(value, 0.0), 1.0)
