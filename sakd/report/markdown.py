"""Assemble reports/results.md from the tables, route figures and sensitivity links."""

from __future__ import annotations

from collections.abc import Sequence

from sakd.reference import PaperLookup
from sakd.report.aggregate import pairs_in_order
from sakd.report.cells import fmt_delta
from sakd.report.paired import paired_table
from sakd.report.records import EvaluateResults
from sakd.report.routes import RouteFigure
from sakd.report.stats import METHOD
from sakd.report.tables import Table, ablation_table, comparison_table, pretrained_table
from sakd.report.teacher_gap import teacher_gap_table

METRIC_TITLES = {"top1": "Top-1", "top5": "Top-5"}


def render_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(table.headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.headers))) + "|",
        *("| " + " | ".join(row) + " |" for row in table.rows),
    ]
    if table.notes:
        lines += ["", *table.notes]
    return "\n".join(lines)


def render_results(
    dataset: str,
    results: EvaluateResults,
    paper: PaperLookup | None = None,
    route_figures: Sequence[RouteFigure] = (),
    sensitivity_links: Sequence[tuple[str, str]] = (),
    metrics: Sequence[str] = ("top1", "top5"),
    val_figures: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The whole report. `sensitivity_links` = (label, relative path) of the sensitivity
    stage's outputs; empty when it has not run."""
    parts = [
        _header(dataset, results, paper),
        "## Networks trained alone (pretrain stage)\n\n" + render_table(pretrained_table(results)),
        _teacher_gap_section(results),
        _comparison_section(results, paper, metrics),
        _ablation_section(results, paper),
        _paired_section(results),
        _val_section(val_figures),
        _routes_section(route_figures),
        _sensitivity_section(sensitivity_links),
        _best_epoch_footnote(results),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _teacher_gap_section(results: EvaluateResults) -> str:
    table = teacher_gap_table(results)
    if table is None:
        return ""
    return ("## Does the teacher have something to teach? (validation top-1)\n\n"
            "The teacher (pretrain stage, last epoch) against the student trained alone by the "
            "distill stage (`never`, each seed, last epoch): the gap with a 95% t-interval over "
            "the student's seeds. With no gap, distillation has little to transfer and "
            "adaptive vs always cannot differ for that reason.\n\n" + render_table(table))


def _header(dataset: str, results: EvaluateResults, paper: PaperLookup | None) -> str:
    seeds = sorted({r.seed for r in results.runs})
    lines = [
        f"# Results: {dataset}",
        f"Dataset: `{dataset}`. Accuracy is the **last epoch's** test accuracy (%), top-1 unless "
        "marked, as the paper reports it[^best]. Distillation cells are the mean ± sample std "
        "over n seeds (std only when n ≥ 2; n in parentheses). Δ = Adap. − Stan. of the means. "
        "T and S are the teacher and the student trained alone by the pretrain stage (its "
        "schedule, one seed); \"S, distill stage\" is the same student trained alone by the "
        "distill stage's `never` strategy (the distilled students' schedule and seeds), the "
        "baseline the distillation rows compare with. Per-epoch numbers and every selection use "
        "the validation split held out of the training data; the test split is read once.",
    ]
    if seeds:
        seed_list = ", ".join(map(str, seeds))
        lines.append(f"Seeds: {seed_list}; distillation runs: {len(results.runs)}.")
    if paper is not None:
        lines.append(
            "\"paper x\" is the number Song et al. (IEEE TIP 2022, Tables III-VIII) report for "
            "the same cell (mean of 3 runs), where the paper has that cell."
        )
    return "\n\n".join(lines)


def _comparison_section(
    results: EvaluateResults, paper: PaperLookup | None, metrics: Sequence[str]
) -> str:
    out = ["## Standard vs adaptive distillation (Tables III-VI)"]
    pairs = pairs_in_order(results.runs)
    if not pairs:
        out.append(
            "No distillation runs in the evaluate metrics yet: only the networks trained alone "
            "are reported above. Run `dvc repro` (distill, then evaluate) to fill these tables."
        )
    for teacher, student in pairs:
        out.append(f"### {teacher} → {student}")
        for metric in metrics:
            table = comparison_table(results, (teacher, student), metric, paper)
            out.append(f"{METRIC_TITLES.get(metric, metric)}:\n\n{render_table(table)}")
    return "\n\n".join(out)


def _ablation_section(results: EvaluateResults, paper: PaperLookup | None) -> str:
    out = ["## Ablation: which strategy decides where to distill (Table VII)"]
    pairs = pairs_in_order(results.runs)
    for pair in pairs:
        table = ablation_table(results, pair, paper)
        title = f"### {pair[0]} → {pair[1]}"
        if table is None:
            out.append(f"{title}\n\nOnly always/adaptive were run for this pair: add the anti, "
                       "random and never strategies to the distill stage to fill this table.")
        else:
            out.append(f"{title}\n\nTop-1:\n\n{render_table(table)}")
    if not pairs:
        out.append("No distillation runs yet.")
    return "\n\n".join(out)


def _paired_section(results: EvaluateResults) -> str:
    out = ["## Is the difference real? Paired differences against `always`",
           f"Each row is a strategy minus standard distillation on the same seeds (last-epoch "
           f"test top-1, points). 95% interval: {METHOD}. A verdict of \"no detectable "
           f"difference\" means the interval contains 0: the seeds cannot tell the two apart."]
    for pair in pairs_in_order(results.runs):
        table = paired_table(results, pair)
        title = f"### {pair[0]} → {pair[1]}"
        if table is None:
            out.append(f"{title}\n\nNo `always` runs for this pair: nothing to pair with.")
        else:
            out.append(f"{title}\n\n{render_table(table)}")
    if len(out) == 2:
        out.append("No distillation runs yet.")
    return "\n\n".join(out)


def _val_section(figures: Sequence[tuple[str, str, str]]) -> str:
    """(caption, image, data) per pair and distiller."""
    if not figures:
        return ""
    out = ["## Validation top-1 per epoch, every strategy",
           "Validation split (held out of the training data), mean over seeds with the min-max "
           "spread shaded: strategies whose bands overlap are not separated by these seeds."]
    out += [f"**{caption}** ([data]({data}))\n\n![{caption}]({image})"
            for caption, image, data in figures]
    return "\n\n".join(out)


def _routes_section(figures: Sequence[RouteFigure]) -> str:
    out = [
        "## Where the adaptive strategy distills (Fig. 3)",
        "Each curve is the fraction of training samples the policy chose to distill at one spot, "
        "per epoch, under the adaptive strategy (mean over seeds; the shaded band is the "
        "min-max over seeds). Spots use the paper's "
        "numbering (spot k = output of block k; `logits` = the KL spot). In the paper's Fig. 3 "
        "the probabilities start low (the policy is untrained), rise quickly as it learns that "
        "the teacher's blocks help, then fall again at shallow spots while deep spots and the "
        "logits stay near 1. Below each figure, one line per run gives the mean fraction "
        "distilled per spot over its last epochs; docs/routing.md explains when the policy "
        "saturates at 1 (adaptive = always) and why.",
    ]
    if not figures:
        out.append("No adaptive runs yet, so no curves.")
    for fig in figures:
        out.append(
            f"**{fig.teacher} → {fig.student}, {fig.distiller}** (n={fig.n_seeds}; "
            f"[data]({fig.data}))\n\n"
            f"![{fig.teacher}->{fig.student} {fig.distiller} distillation probability]"
            f"({fig.image})"
            + "".join(f"\n\n- {line}" for line in fig.summaries)
        )
    return "\n\n".join(out)


def _sensitivity_section(links: Sequence[tuple[str, str]]) -> str:
    out = ["## Sensitivity to beta3 and tau (Fig. 4)"]
    if links:
        out.append("\n".join(f"- [{label}]({path})" for label, path in links))
    else:
        out.append("Not run yet: `dvc repro sensitivity` runs the Optuna study over beta3 and "
                   "the Gumbel temperature schedule and writes reports/sensitivity.md.")
    return "\n\n".join(out)


def _best_epoch_footnote(results: EvaluateResults) -> str:
    text = ("[^best]: Every number in the tables is the LAST epoch's accuracy on the test split, "
            "as the paper reports it; the test split is read once, after training. The best "
            "epoch (`best_epoch` in the evaluate metrics) is chosen on the validation split "
            "(held out of the training data), never on test.")
    if results.runs:
        gaps = [r.best_val_top1 - r.val_top1 for r in results.runs]
        text += (f" Over the {len(gaps)} runs here, the best epoch's validation top-1 exceeds "
                 f"the last epoch's by {fmt_delta(sum(gaps) / len(gaps))} points on average "
                 f"(at most {fmt_delta(max(gaps))}).")
    return text
