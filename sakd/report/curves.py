"""Chart data for `dvc plots show`: the strategies of one pair and distiller on one chart, and
Fig. 3's per-spot distillation probabilities with every spot as its own line.

Both come out as CSV text whose columns dvc.yaml's top-level plot definitions name: the
strategies chart is wide (`epoch,<strategy>...`, y = runs.strategies), the spots chart long
(`epoch,spot,p_distill`, coloured by spot through a template), since spots differ per run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sakd.report.aggregate import strategy_sort_key
from sakd.report.routes import RouteCurve


def strategies_csv_text(curves: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """`epoch,<strategy>...`: per strategy the mean over its seeds' curves at each epoch.

    `curves[strategy]` holds one per-epoch list per seed; an epoch averages the seeds that
    reached it, and a strategy that stopped earlier leaves the later cells empty."""
    strategies = sorted(curves, key=strategy_sort_key)
    n_epochs = max((len(c) for runs in curves.values() for c in runs), default=0)
    lines = [",".join(("epoch", *strategies))]
    for epoch in range(n_epochs):
        cells = []
        for name in strategies:
            values = [c[epoch] for c in curves[name] if len(c) > epoch]
            cells.append(f"{math.fsum(values) / len(values):.4f}" if values else "")
        lines.append(",".join((str(epoch + 1), *cells)))
    return "\n".join(lines) + "\n"


def spots_csv_text(curve: RouteCurve) -> str:
    """`epoch,spot,p_distill`, one row per epoch and spot (long format: one line per spot)."""
    lines = ["epoch,spot,p_distill"]
    for epoch, row in zip(curve.epochs, curve.values, strict=True):
        lines.extend(f"{epoch},{spot},{p:.6f}" for spot, p in zip(curve.spots, row, strict=True))
    return "\n".join(lines) + "\n"
