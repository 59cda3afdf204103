"""Paper-style tables from evaluate records: numbers, missing cells, paper column, order."""

from __future__ import annotations

import pytest

from sakd.reference import paper_lookup, paper_result
from sakd.report import (
    ReportInputError,
    ablation_table,
    comparison_table,
    parse_evaluate,
    render_results,
    summarize,
)

PAIR = ("resnet56", "resnet20")


def run(distiller, strategy, seed, top1, top5=90.0, best=None, pair=PAIR):
    teacher, student = pair
    key = f"{teacher}-{student}/{distiller}-{strategy}/seed{seed}"
    return key, {
        "teacher": teacher, "student": student, "distiller": distiller, "strategy": strategy,
        "seed": seed, "top1": top1, "top5": top5,
        "val_top1": top1, "best_val_top1": top1 if best is None else best,
        "best_epoch": 3, "epochs": 4,
    }


def evaluate_data(*runs):
    return {
        "teachers": {"resnet56": {"top1": 72.5, "top5": 92.25},
                     "resnet20": {"top1": 69.25, "top5": 91.0}},
        "students": dict(runs),
    }


def two_seed_results():
    return parse_evaluate(evaluate_data(
        run("pkt", "always", 0, 70.0, top5=90.0), run("pkt", "always", 1, 71.0, top5=91.0),
        run("pkt", "adaptive", 0, 71.2), run("pkt", "adaptive", 1, 72.4),
        run("kd", "always", 0, 70.5), run("kd", "always", 1, 70.5),
        run("at", "always", 0, 69.0),
        run("kd", "never", 0, 68.0), run("kd", "never", 1, 69.0),
        run("pkt", "anti", 0, 60.0), run("pkt", "anti", 1, 61.0),
    ))


def rows_by_label(table):
    return {row[0]: row[1:] for row in table.rows}


def test_summary_is_mean_and_sample_std():
    s = summarize([70.0, 71.0])
    assert (s.mean, s.n) == (70.5, 2)
    assert s.std == pytest.approx(0.70710678)
    one = summarize([70.0])
    assert (one.mean, one.std, one.n) == (70.0, None, 1)


def test_comparison_table_values_over_two_seeds():
    table = comparison_table(two_seed_results(), PAIR)
    assert table.headers == ("", "Stan.", "Adap.", "Δ")
    rows = rows_by_label(table)
    assert rows["T, pretrain stage (resnet56)"] == ("72.50", "—", "—")
    assert rows["S, pretrain stage (resnet20)"] == ("69.25", "—", "—")
    assert rows["S, distill stage (`never`; resnet20)"] == ("68.50 ± 0.71 (n=2)", "—", "—")
    # PKT: Stan. 70.0/71.0, Adap. 71.2/72.4 -> Delta of the means +1.30
    assert rows["PKT"] == ("70.50 ± 0.71 (n=2)", "71.80 ± 0.85 (n=2)", "+1.30")
    assert rows["KD"] == ("70.50 ± 0.00 (n=2)", "—", "—")
    assert rows["AT"] == ("69.00 (n=1)", "—", "—")  # one seed: no std


def test_comparison_rows_follow_the_paper_order():
    results = parse_evaluate(evaluate_data(
        *(run(d, "always", 0, 70.0)
          for d in ("crd", "pkt", "mykd", "reviewkd", "fitnet", "at"))
    ))
    labels = [row[0] for row in comparison_table(results, PAIR).rows]
    assert labels == ["T, pretrain stage (resnet56)", "S, pretrain stage (resnet20)",
                      "KD", "FitNet", "AT", "PKT", "CRD", "MYKD", "ReviewKD"]


def test_negative_delta_is_signed():
    results = parse_evaluate(evaluate_data(
        run("at", "always", 0, 71.0), run("at", "adaptive", 0, 70.75)))
    assert rows_by_label(comparison_table(results, PAIR))["AT"][2] == "-0.25"


def test_top5_table_uses_top5():
    rows = rows_by_label(comparison_table(two_seed_results(), PAIR, metric="top5"))
    assert rows["T, pretrain stage (resnet56)"][0] == "92.25"
    assert rows["PKT"][0] == "90.50 ± 0.71 (n=2)"


def test_ablation_table_shows_only_run_strategies_and_dashes_for_missing_cells():
    table = ablation_table(two_seed_results(), PAIR)
    assert table.headers == ("", "Adaptive", "Always", "Anti", "No")
    rows = rows_by_label(table)
    assert rows["PKT"] == ("71.80 ± 0.85 (n=2)", "70.50 ± 0.71 (n=2)", "60.50 ± 0.71 (n=2)",
                           "68.50 ± 0.71 (n=2)")
    assert rows["AT"] == ("—", "69.00 (n=1)", "—", "68.50 ± 0.71 (n=2)")
    assert list(rows) == ["KD", "AT", "PKT"]


def test_no_ablation_table_without_ablation_strategies():
    results = parse_evaluate(evaluate_data(run("pkt", "always", 0, 70.0)))
    assert ablation_table(results, PAIR) is None


def test_paper_column_matches_the_reference_data():
    table = comparison_table(two_seed_results(), PAIR, paper=paper_lookup("cifar100"))
    rows = rows_by_label(table)
    stan = paper_result("cifar100", *PAIR, "pkt", "always")
    adap = paper_result("cifar100", *PAIR, "pkt", "adaptive")
    assert rows["PKT"] == (
        f"70.50 ± 0.71 (n=2; paper {stan:.2f})",
        f"71.80 ± 0.85 (n=2; paper {adap:.2f})",
        "+1.30 (paper +0.84)",
    )
    assert rows["T, pretrain stage (resnet56)"][0] == "72.50 (paper 72.34)"
    assert rows["KD"][0] == "70.50 ± 0.00 (n=2; paper 70.66)"
    assert rows["KD"][1] == "—"  # the paper has no adaptive KD


def test_ablation_paper_cells():
    pair = ("resnet32x4", "resnet8x4")
    results = parse_evaluate(evaluate_data(
        run("sp", "anti", 0, 70.0, pair=pair), run("sp", "random", 0, 71.0, pair=pair)))
    rows = rows_by_label(ablation_table(results, pair, paper=paper_lookup("cifar100")))
    assert rows["SP"] == ("70.00 (n=1; paper 71.89)", "71.00 (n=1; paper 73.57)")


def test_paper_column_only_for_paper_datasets():
    results = two_seed_results()
    with_paper = render_results("cifar100", results, paper=paper_lookup("cifar100"))
    without = render_results("digits", results, paper=paper_lookup("digits"))
    assert "paper 71.56" in with_paper and "\"paper x\"" in with_paper
    assert "(paper " not in without and "; paper " not in without
    assert "\"paper x\"" not in without


def test_results_document_states_what_the_numbers_are():
    text = render_results("cifar100", two_seed_results())
    assert "# Results: cifar100" in text
    assert "last epoch" in text and "mean ± sample std" in text
    assert "[^best]:" in text and "chosen on the validation split" in text
    assert text.index("### resnet56 → resnet20") < text.index("## Ablation")
    assert "| PKT | 70.50 ± 0.71 (n=2) | 71.80 ± 0.85 (n=2) | +1.30 |" in text


def test_empty_students_still_reports_networks_trained_alone():
    text = render_results("cifar100", parse_evaluate(evaluate_data()))
    assert "| resnet56 | 72.50 | 92.25 |" in text
    assert "No distillation runs" in text


def test_sensitivity_section_links_or_says_how_to_run():
    results = parse_evaluate(evaluate_data())
    linked = render_results("cifar100", results,
                            sensitivity_links=[("Sensitivity report", "sensitivity.md")])
    assert "[Sensitivity report](sensitivity.md)" in linked
    assert "dvc repro sensitivity" in render_results("cifar100", results)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("students"), "students"),
        (lambda d: d["students"]["k"].pop("strategy"), "'strategy'"),
        (lambda d: d["students"]["k"].update(top1=0.7 * 200), "top1"),
        (lambda d: d["students"]["k"].update(seed="0"), "seed"),
        (lambda d: d["teachers"]["resnet56"].pop("top5"), "resnet56"),
    ],
)
def test_malformed_evaluate_data_names_the_field(mutate, message):
    data = evaluate_data(("k", run("pkt", "always", 0, 70.0)[1]))
    mutate(data)
    with pytest.raises(ReportInputError, match=message):
        parse_evaluate(data, source="metrics/evaluate/cifar100.json")
