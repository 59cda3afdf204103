"""`report` stage: read evaluate metrics and route curves, write reports/results.md + Fig. 3 plots.

All table logic lives in `sakd.report`; this file only finds, reads and writes files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import UserError
from pipeline.paths import Layout
from sakd.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from sakd.reference import paper_lookup
from sakd.report import (
    EvaluateResults,
    ReportInputError,
    RouteCurve,
    RouteFigure,
    StudentRun,
    average_routes,
    late_summary,
    pairs_in_order,
    parse_evaluate,
    parse_route_csv,
    render_results,
    route_csv_text,
    route_png_bytes,
    summary_metrics,
)
from sakd.report.aggregate import distiller_sort_key, strategy_sort_key
from sakd.report.compression import render_compression
from sakd.report.curves import chart_title, spots_csv_text, strategies_csv_text
from sakd.report.routes import route_band_csv_text
from sakd.report.val_curves import band, bands_csv_text, parse_val_curve, val_png_bytes

SENSITIVITY_OUTPUTS = (
    ("Sensitivity report", Path("reports") / "sensitivity.md"),
    ("Sensitivity metrics", Path("metrics") / "sensitivity.json"),
)


def run_report(root: Path, dataset: str, out_md: Path, plots_dir: Path) -> None:
    """Write `out_md` and the route + validation plots under `plots_dir` (paths under `root`)."""
    root = Path(root)
    out_md, plots_dir = root / out_md, root / plots_dir
    layout = Layout(root, dataset)
    try:
        results = read_evaluate(layout.evaluate_metrics())
        figures = write_route_figures(layout, results, plots_dir, out_md.parent)
        val_figures = write_val_figures(layout, results, plots_dir, out_md.parent)
    except ReportInputError as err:
        raise UserError(str(err)) from None
    links = [
        (label, _relative(root / path, out_md.parent))
        for label, path in SENSITIVITY_OUTPUTS
        if (root / path).is_file()
    ]
    text = render_results(dataset, results, paper_lookup(dataset), figures, links,
                          val_figures=val_figures)
    compression = root / "metrics" / "compression" / f"{dataset}.json"
    if compression.is_file():  # written by the compression stage (`sakd compression`)
        text += "\n" + render_compression(json.loads(compression.read_text(encoding="utf-8")))
    atomic_write_text(out_md, text)
    atomic_write_json(layout.summary_metrics, summary_metrics(results))


def read_evaluate(path: Path) -> EvaluateResults:
    if not path.is_file():
        raise UserError(f"{path} is missing: the evaluate stage writes it (`dvc repro evaluate`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); rerun `dvc repro evaluate`") from None
    return parse_evaluate(data, source=str(path))


def write_route_figures(
    layout: Layout, results: EvaluateResults, plots_dir: Path, report_dir: Path
) -> list[RouteFigure]:
    """One averaged curve per (pair, distiller) run with the adaptive strategy: PNG (mean and
    min-max band over seeds), route CSV (the mean) and band CSV (mean, min, max, n)."""
    figures = []
    for (teacher, student, distiller), runs in _adaptive_groups(results):
        sources = [layout.distill_plots(run.key) / "route.csv" for run in runs]
        per_run = [_read_route(p) for p in sources]
        curve = average_routes(per_run, [str(p) for p in sources])
        stem = plots_dir / f"route_{teacher}-{student}_{distiller}"
        chart = chart_title(layout.dataset, teacher, student, distiller)
        title = f"{chart}, adaptive " + (
            f"(mean over {len(runs)} seeds, band: min–max)" if len(runs) > 1 else "(1 seed)")
        png, csv = stem.with_suffix(".png"), stem.with_suffix(".csv")
        atomic_write_bytes(png, route_png_bytes(curve, title))
        atomic_write_text(csv, route_csv_text(curve))
        atomic_write_text(stem.with_name(f"{stem.name}_band.csv"), route_band_csv_text(curve))
        atomic_write_text(plots_dir / "spots" / f"{teacher}-{student}_{distiller}.csv",
                          spots_csv_text(curve, chart))  # dvc.yaml's Fig. 3: a line per spot
        figures.append(RouteFigure(
            teacher, student, distiller,
            image=_relative(png, report_dir), data=_relative(csv, report_dir), n_seeds=len(runs),
            summaries=tuple(late_summary(f"seed {r.seed}", c) for r, c in zip(runs, per_run,
                                                                              strict=True)),
        ))
    return figures


def write_val_figures(
    layout: Layout, results: EvaluateResults, plots_dir: Path, report_dir: Path
) -> list[tuple[str, str, str]]:
    """Per (pair, distiller): validation top-1 per epoch, one band per strategy (PNG + CSV,
    and the wide CSV of dvc.yaml's strategies plot).
    Returns (caption, image, data) with paths relative to the report."""
    out = []
    for pair in pairs_in_order(results.runs):
        in_pair = [r for r in results.runs if r.pair == pair]
        for distiller in sorted({r.distiller for r in in_pair}, key=distiller_sort_key):
            runs = [r for r in in_pair if r.distiller == distiller]
            bands = {
                strategy: band([_read_val(layout.distill_plots(r.key) / "curves.csv")
                                for r in runs if r.strategy == strategy])
                for strategy in sorted({r.strategy for r in runs}, key=strategy_sort_key)
            }
            caption = chart_title(layout.dataset, *pair, distiller)
            stem = plots_dir / f"val_{pair[0]}-{pair[1]}_{distiller}"
            png, csv = stem.with_suffix(".png"), stem.with_suffix(".csv")
            atomic_write_bytes(png, val_png_bytes(bands, caption + " (mean, min-max over seeds)"))
            atomic_write_text(csv, bands_csv_text(bands))
            # the same means, a row per strategy and epoch, for dvc.yaml's `strategies` plot
            atomic_write_text(plots_dir / "strategies" / f"{pair[0]}-{pair[1]}_{distiller}.csv",
                              strategies_csv_text(bands, caption))
            out.append((caption, _relative(png, report_dir), _relative(csv, report_dir)))
    return out


def _read_val(path: Path) -> dict[int, float]:
    if not path.is_file():
        raise UserError(f"{path} is missing: the distill stage writes it (`dvc repro distill`)")
    return parse_val_curve(path.read_text(encoding="utf-8"), source=str(path))


def _adaptive_groups(
    results: EvaluateResults,
) -> Iterator[tuple[tuple[str, str, str], list[StudentRun]]]:
    adaptive = [r for r in results.runs if r.strategy == "adaptive"]
    for pair in pairs_in_order(adaptive):
        in_pair = [r for r in adaptive if r.pair == pair]
        for distiller in sorted({r.distiller for r in in_pair}, key=distiller_sort_key):
            runs = sorted((r for r in in_pair if r.distiller == distiller), key=lambda r: r.seed)
            yield (*pair, distiller), runs


def _read_route(path: Path) -> RouteCurve:
    if not path.is_file():
        raise UserError(f"{path} is missing: the distill stage writes it (`dvc repro distill`)")
    return parse_route_csv(path.read_text(encoding="utf-8"), source=str(path))


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()

