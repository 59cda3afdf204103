"""Paired differences over seeds: the t-interval, the verdict, and the report's table."""

from __future__ import annotations

import pytest

from sakd.report import parse_evaluate, render_results
from sakd.report.paired import paired_table
from sakd.report.stats import paired_difference, summary_fields, verdict
from tests.test_report_tables import PAIR, evaluate_data, run


def test_interval_is_the_t_interval_of_the_paired_differences():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, df=2) = 4.3027
    diff = paired_difference({0: 71.0, 1: 72.0, 2: 73.0}, {0: 70.0, 1: 70.0, 2: 70.0})
    half = 4.302653 / 3 ** 0.5
    assert diff.mean == pytest.approx(2.0) and diff.n == 3
    assert (diff.low, diff.high) == pytest.approx((2.0 - half, 2.0 + half), abs=1e-5)
    assert verdict(diff, "adaptive", "always") == "no detectable difference at n=3"


def test_pairs_by_seed_and_a_consistent_gain_is_detectable():
    adaptive = {0: 71.0, 1: 61.1, 2: 80.9, 7: 50.0}  # seed 7 has no partner: left out
    always = {0: 70.0, 1: 60.0, 2: 80.0, 3: 99.0}
    diff = paired_difference(adaptive, always)
    assert diff.n == 3 and diff.mean == pytest.approx(1.0)
    assert diff.detectable and diff.low > 0  # the seeds differ by 20 points; the pairs by ~1
    assert verdict(diff, "adaptive", "always").startswith("adaptive better than always")
    assert summary_fields(diff)["seeds"] == 3
    assert summary_fields(diff)["delta_ci_low"] == pytest.approx(diff.low, abs=1e-4)


def test_one_seed_has_no_interval_and_says_so():
    diff = paired_difference({0: 71.0}, {0: 70.0})
    assert diff.low is None and not diff.detectable
    assert "no interval" in verdict(diff, "adaptive", "always")
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_report_shows_every_strategy_against_always_with_its_interval():
    results = parse_evaluate(evaluate_data(
        *(run("kd", s, seed, top1)
          for s, tops in {"always": (70.0, 71.0, 72.0), "adaptive": (70.1, 70.9, 72.2),
                          "anti": (60.0, 61.0, 62.1)}.items()
          for seed, top1 in enumerate(tops)),
    ))
    table = paired_table(results, PAIR)
    rows = {row[1]: row for row in table.rows}
    assert set(rows) == {"adaptive − always", "anti − always"}
    assert rows["adaptive − always"][4] == "3"
    assert rows["adaptive − always"][5] == "no detectable difference at n=3"
    assert rows["anti − always"][5].startswith("always better than anti")
    text = render_results("digits", results)
    assert "t-interval" in text and "no detectable difference at n=3" in text


def test_late_route_summary_flags_a_policy_that_distills_everywhere():
    from sakd.report import late_fractions, late_summary, parse_route_csv

    rising = parse_route_csv("epoch,1,logits\n1,0.5,0.5\n2,0.9,1.0\n3,0.6,1.0\n4,0.4,1.0\n")
    assert late_fractions(rising, last=2) == pytest.approx({"1": 0.5, "logits": 1.0})
    line = late_summary("seed 0", rising, last=2)
    assert line == "seed 0: 1 0.50, logits 1.00 (mean of epochs 3-4)"
    flat = parse_route_csv("epoch,1,logits\n1,0.7,0.8\n2,1.0,1.0\n3,1.0,1.0\n")
    assert "adaptive = always" in late_summary("seed 1", flat, last=2)
