"""Fig. 4 (accuracy against beta3 and against tau0, standard distillation dashed with its
noise band over seeds) and the optimisation history, as PNG bytes without software/date
metadata (the same data gives the same bytes: stable DVC hashes).

The history is Optuna's own plot (`plot_optimization_history`) with the baseline added. Kept
beside Optuna because Fig. 4 is not its slice plot: that has no reference line, cannot draw a
grid sweep as a curve, and in a grid study would mix the other sweeps' points.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sakd.tuning.baseline import NoiseBand

YLABEL = "validation top-1 (%)"


def _png(fig: Figure, dpi: int) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


def _finish(ax, xlabel: str, title: str, baseline: NoiseBand | None, has_data: bool) -> None:
    """What every chart here shares: the baseline's mean as the dashed line with mean ± 1
    sample sd shaded behind it (one seed: the line alone, its label says so), so a reader sees
    which trials differ from standard distillation by more than seed noise; labels, legend."""
    if baseline is not None:
        if baseline.low is not None and baseline.high is not None:
            ax.axhspan(baseline.low, baseline.high, color="0.3", alpha=0.15, linewidth=0,
                       zorder=0)
        ax.axhline(baseline.mean, linestyle="--", color="0.3", linewidth=1.2,
                   label=baseline.label())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(YLABEL)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(y=0.12)  # trials at the band's edge stay clear of the frame
    if has_data or baseline is not None:  # below the axes: never over a trial or the band
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))


def sweep_png(
    points: Sequence[tuple[float, float]],
    xlabel: str,
    title: str,
    baseline: NoiseBand | None = None,
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
    if log_x and all(x > 0 for x, _ in points):
        ax.set_xscale("log")
    if xlim is not None:  # a search: show the whole range, not just where trials landed
        ax.set_xlim(*xlim)
    _finish(ax, xlabel, title, baseline, bool(points))
    return _png(fig, dpi)


def history_png(study: optuna.Study, title: str, baseline: NoiseBand | None = None,
                dpi: int = 120) -> bytes:
    """Optuna's optimisation history (each complete trial's value, the best so far) with the
    baseline; drawn under a private rc context (Optuna switches pyplot to its ggplot style)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        fig = Figure(figsize=(6.0, 4.0))  # nothing to plot: Optuna would only log a warning
        FigureCanvasAgg(fig)
        _finish(fig.add_subplot(), "trial", title, baseline, has_data=False)
        return _png(fig, dpi)
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_optimization_history(study, target_name="trial")
        fig = ax.figure
        try:
            fig.set_size_inches(6.0, 4.0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            _finish(ax, "trial", title, baseline, has_data=True)
            return _png(fig, dpi)
        finally:
            plt.close(fig)
