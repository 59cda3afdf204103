"""Chart data for `dvc plots show`: the strategies of one pair and distiller on one chart, and
Fig. 3's per-spot distillation probabilities with every spot as its own line.

Both come out as long CSV text (`epoch,strategy,val_top1,chart` and `epoch,spot,p_distill,chart`)
whose columns dvc.yaml's top-level plot definitions and their templates (.dvc/plots/) name: a
line per strategy or spot, and `chart` (e.g. `digits: resnet20 → resnet8, at`) is the chart's
title, since one plot definition draws a chart per file and can give them only one title.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

from sakd.report.aggregate import strategy_sort_key
from sakd.report.routes import RouteCurve
from sakd.report.val_curves import Band


def chart_title(dataset: str, teacher: str, student: str, distiller: str) -> str:
    """What a chart of one pair and distiller is called (also the report's captions)."""
    return f"{dataset}: {teacher} → {student}, {distiller}"


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # quotes the title: it holds a comma
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def strategies_csv_text(bands: Mapping[str, Band], chart: str) -> str:
    """`epoch,strategy,val_top1,chart`: each strategy's mean over seeds per epoch (its Band,
    the same numbers the report's validation chart draws), strategies in the paper's order."""
    rows = ((epoch, name, f"{mean:.4f}", chart)
            for name in sorted(bands, key=strategy_sort_key)
            for epoch, mean in zip(bands[name].epochs, bands[name].mean, strict=True))
    return _csv(("epoch", "strategy", "val_top1", "chart"), rows)


def spots_csv_text(curve: RouteCurve, chart: str) -> str:
    """`epoch,spot,p_distill,chart`, one row per epoch and spot (a line per spot)."""
    rows = ((epoch, spot, f"{p:.6f}", chart)
            for epoch, row in zip(curve.epochs, curve.values, strict=True)
            for spot, p in zip(curve.spots, row, strict=True))
    return _csv(("epoch", "spot", "p_distill", "chart"), rows)
