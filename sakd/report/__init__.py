"""Paper-style tables and figures from the pipeline's results (pure functions on records).

    results = parse_evaluate(json.loads(text))
    markdown = render_results("cifar100", results, paper=paper_lookup("cifar100"))

Knows nothing of files or DVC: `pipeline/report.py` reads the inputs and writes the outputs.
"""

from sakd.report.aggregate import (
    DISTILLER_ORDER,
    STRATEGY_ORDER,
    Summary,
    pairs_in_order,
    summarize,
    summarize_cells,
    summarize_no_distillation,
)
from sakd.report.figures import route_png_bytes
from sakd.report.markdown import render_results, render_table
from sakd.report.records import (
    Accuracy,
    EvaluateResults,
    ReportInputError,
    StudentRun,
    parse_evaluate,
)
from sakd.report.routes import (
    RouteCurve,
    RouteFigure,
    average_routes,
    late_fractions,
    late_summary,
    parse_route_csv,
    route_csv_text,
)
from sakd.report.summary import summary_metrics
from sakd.report.tables import Table, ablation_table, comparison_table, pretrained_table

__all__ = [
    "DISTILLER_ORDER",
    "STRATEGY_ORDER",
    "Accuracy",
    "EvaluateResults",
    "ReportInputError",
    "RouteCurve",
    "RouteFigure",
    "StudentRun",
    "Summary",
    "Table",
    "ablation_table",
    "average_routes",
    "comparison_table",
    "late_fractions",
    "late_summary",
    "pairs_in_order",
    "parse_evaluate",
    "parse_route_csv",
    "pretrained_table",
    "render_results",
    "render_table",
    "route_csv_text",
    "route_png_bytes",
    "summarize",
    "summarize_cells",
    "summarize_no_distillation",
    "summary_metrics",
]
