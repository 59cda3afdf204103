"""Validation top-1 per epoch for every strategy of one pair: mean over seeds with the min-max
spread, the chart that shows whether strategies separate beyond seed noise (from curves.csv).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sakd.report.records import ReportInputError

COLUMN = "val/top1"


@dataclass(frozen=True)
class Band:
    """One strategy's curve: per epoch the mean, min and max over its runs."""

    epochs: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n: int


def parse_val_curve(text: str, source: str = "curves.csv") -> dict[int, float]:
    """epoch -> validation top-1 from one run's curves.csv."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "epoch" not in rows[0] or COLUMN not in rows[0]:
        raise ReportInputError(f"{source}: expected columns 'epoch' and '{COLUMN}'")
    try:
        return {int(float(r["epoch"])): float(r[COLUMN]) for r in rows}
    except (TypeError, ValueError) as err:
        raise ReportInputError(f"{source}: not a number in 'epoch' or '{COLUMN}' ({err})") from None


def band(curves: Sequence[Mapping[int, float]]) -> Band:
    """Mean/min/max over runs at every epoch all of them reached."""
    if not curves:
        raise ValueError("no curves to summarise")
    epochs = tuple(sorted(set.intersection(*(set(c) for c in curves))))
    cols = [[c[e] for c in curves] for e in epochs]
    return Band(epochs, tuple(math.fsum(v) / len(v) for v in cols),
                tuple(min(v) for v in cols), tuple(max(v) for v in cols), len(curves))


def bands_csv_text(bands: Mapping[str, Band]) -> str:
    """Long format (strategy, epoch, mean, low, high) for `dvc plots` and spreadsheets."""
    lines = ["strategy,epoch,val_top1,val_top1_min,val_top1_max"]
    for strategy, b in bands.items():
        for i, epoch in enumerate(b.epochs):
            lines.append(f"{strategy},{epoch},{b.mean[i]:.4f},{b.low[i]:.4f},{b.high[i]:.4f}")
    return "\n".join(lines) + "\n"


def val_png_bytes(bands: Mapping[str, Band], title: str, dpi: int = 120) -> bytes:
    """One line per strategy (mean over seeds) with its min-max spread shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy, b in bands.items():
        (line,) = ax.plot(b.epochs, b.mean, label=f"{strategy} (n={b.n})", marker="o",
                          markersize=3)
        ax.fill_between(b.epochs, b.low, b.high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
