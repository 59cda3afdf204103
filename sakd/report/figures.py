"""Fig. 3-style plot of per-spot distillation probability, rendered to PNG bytes.

Uses matplotlib's Agg canvas on a private Figure (no pyplot state, no display needed); the
caller decides where the bytes go.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sakd.report.routes import RouteCurve


def route_png_bytes(curve: RouteCurve, title: str, dpi: int = 120) -> bytes:
    """One line per spot over epochs (the mean over seeds), y fixed to [0, 1], legend with the
    spot names; from two seeds on, each spot's min-max over seeds is shaded in its colour so a
    reader sees whether the curves of different spots really separate."""
    fig = Figure(figsize=(7.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    marker = "o" if len(curve.epochs) <= 30 else None
    banded = curve.max_seeds > 1
    for spot in curve.spots:
        (line,) = ax.plot(curve.epochs, curve.series(spot), label=spot, marker=marker,
                          markersize=3)
        if banded:
            low, high = curve.spread(spot)
            ax.fill_between(curve.epochs, low, high, color=line.get_color(), alpha=0.2,
                            linewidth=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("fraction of samples distilled")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title="spot\n(band: min–max\nover seeds)" if banded else "spot", fontsize=8,
              title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    # No software/date metadata: the same curve gives the same bytes (stable DVC hashes).
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
