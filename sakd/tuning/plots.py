"""Fig. 4 (accuracy against beta3 and against tau0, standard distillation dashed) and the
optimisation history, rendered to PNG bytes on a private Agg figure (no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _png(fig: Figure, dpi: int) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    # No software/date metadata: the same data gives the same bytes (stable DVC hashes).
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _baseline(ax, baseline: float | None) -> None:
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="0.3", linewidth=1.2,
                   label=f"standard distillation (always): {baseline:.2f}%")


def sweep_png(
    points: Sequence[tuple[float, float]],
    xlabel: str,
    title: str,
    baseline: float | None = None,
    log_x: bool = False,
    connect: bool = True,
    xlim: tuple[float, float] | None = None,
    dpi: int = 120,
) -> bytes:
    """Validation top-1 against one hyper-parameter; `connect` draws a grid sweep as a line,
    otherwise (a search, where other values vary too) the trials are a scatter."""
    fig = Figure(figsize=(5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if points:
        xs, ys = zip(*points, strict=True)
        style = {"marker": "o", "linestyle": "-" if connect else "none"}
        ax.plot(xs, ys, label="spot-adaptive (SAKD)", markersize=5, **style)
    else:
        ax.text(0.5, 0.5, "no complete trial yet", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    _baseline(ax, baseline)
    if log_x and all(x > 0 for x, _ in points):
        ax.set_xscale("log")
    if xlim is not None:  # a search: show the whole range, not just where trials landed
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if points or baseline is not None:
        ax.legend(fontsize=8, loc="best")
    return _png(fig, dpi)


def history_png(rows: Sequence[dict[str, float]], title: str, baseline: float | None = None,
                dpi: int = 120) -> bytes:
    """Each complete trial's value and the best so far, by trial number."""
    fig = Figure(figsize=(6.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if rows:
        trials = [r["trial"] for r in rows]
        ax.plot(trials, [r["val_top1"] for r in rows], "o", label="trial", markersize=5)
        ax.step(trials, [r["best_val_top1"] for r in rows], where="post", label="best so far")
    _baseline(ax, baseline)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if rows or baseline is not None:
        ax.legend(fontsize=8, loc="best")
    return _png(fig, dpi)
