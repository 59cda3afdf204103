"""Per-spot distillation probability curves (Fig. 3): parse one run's route.csv, average seeds
and keep their spread (min and max per epoch and spot), so the figure shows whether a spot's
curve is the policy's or one seed's.

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


Table = tuple[tuple[float, ...], ...]  # [epoch i][spot j]


@dataclass(frozen=True)
class RouteCurve:
    """p_distill per epoch and spot; `n_seeds[i]` = how many runs averaged into epoch i.

    `low` / `high`: the min and max over those runs (one run: its own values, the default)."""

    spots: tuple[str, ...]
    epochs: tuple[int, ...]
    values: Table  # values[i][j]: epoch i, spot j (the mean over runs)
    n_seeds: tuple[int, ...]
    low: Table = ()
    high: Table = ()

    def __post_init__(self) -> None:
        for name in ("low", "high"):  # a single run's spread is the run itself
            if not getattr(self, name):
                object.__setattr__(self, name, self.values)
        shape = [len(row) for row in self.values]
        if [len(r) for r in self.low] != shape or [len(r) for r in self.high] != shape:
            raise ValueError("low and high must have the shape of values (epochs x spots)")

    def series(self, spot: str) -> list[float]:
        j = self.spots.index(spot)
        return [row[j] for row in self.values]

    def spread(self, spot: str) -> tuple[list[float], list[float]]:
        """(min, max) over the runs per epoch of one spot: the band around `series(spot)`."""
        j = self.spots.index(spot)
        return [row[j] for row in self.low], [row[j] for row in self.high]

    @property
    def max_seeds(self) -> int:
        """The most runs any epoch averages (the n of "mean over n seeds")."""
        return max(self.n_seeds, default=0)


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
    """Mean, min and max over runs per epoch. Runs may stop at different epochs: each epoch
    summarises the runs that reached it (recorded in `n_seeds`). All runs must name the same
    spots."""
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
    columns = [list(zip(*per_epoch[e], strict=True)) for e in epochs]  # [epoch][spot] -> runs
    return RouteCurve(
        spots, epochs,
        values=tuple(tuple(math.fsum(c) / len(c) for c in cols) for cols in columns),
        n_seeds=tuple(len(per_epoch[e]) for e in epochs),
        low=tuple(tuple(min(c) for c in cols) for cols in columns),
        high=tuple(tuple(max(c) for c in cols) for cols in columns),
    )


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


def route_band_csv_text(curve: RouteCurve) -> str:
    """The band behind the figure, long format `epoch,spot,mean,min,max,n_seeds`: the numbers
    a reader checks a shaded region against (route.csv keeps its re-readable layout)."""
    lines = ["epoch,spot,mean,min,max,n_seeds"]
    for i, epoch in enumerate(curve.epochs):
        for j, spot in enumerate(curve.spots):
            lines.append(f"{epoch},{spot},{curve.values[i][j]:.6f},{curve.low[i][j]:.6f},"
                         f"{curve.high[i][j]:.6f},{curve.n_seeds[i]}")
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
