"""Chart data for `dvc plots show`: the strategies of one pair and distiller on one chart, and
Fig. 3's per-spot distillation probabilities with every spot as its own line.

Both come out as CSV text whose columns dvc.yaml's top-level plot definitions name: the
strategies chart is wide (`epoch,<strategy>...`, y = runs.strategies), the spots chart long
(`epoch,spot,p_distill`, coloured by spot through a template), since spots differ per run.
"""

from __future__ import annotations

from collections.abc import Mapping

from sakd.report.aggregate import strategy_sort_key
from sakd.report.routes import RouteCurve
from sakd.report.val_curves import Band


def strategies_csv_text(bands: Mapping[str, Band]) -> str:
    """`epoch,<strategy>...`: each strategy's mean over seeds per epoch (its Band, the same
    numbers the report's validation chart draws); an epoch a strategy lacks is left empty."""
    strategies = sorted(bands, key=strategy_sort_key)
    epochs = sorted({e for b in bands.values() for e in b.epochs})
    means = {name: dict(zip(bands[name].epochs, bands[name].mean, strict=True))
             for name in strategies}
    lines = [",".join(("epoch", *strategies))]
    for epoch in epochs:
        cells = (f"{means[n][epoch]:.4f}" if epoch in means[n] else "" for n in strategies)
        lines.append(",".join((str(epoch), *cells)))
    return "\n".join(lines) + "\n"


def spots_csv_text(curve: RouteCurve) -> str:
    """`epoch,spot,p_distill`, one row per epoch and spot (long format: one line per spot)."""
    lines = ["epoch,spot,p_distill"]
    for epoch, row in zip(curve.epochs, curve.values, strict=True):
        lines.extend(f"{epoch},{spot},{p:.6f}" for spot, p in zip(curve.spots, row, strict=True))
    return "\n".join(lines) + "\n"
