"""The benchmark's first check, in the report and summary.json: the teacher's validation top-1
against the student trained alone (`never`), with a 95% interval over the student's seeds."""

from __future__ import annotations

import pytest

from sakd.report import parse_evaluate, render_results, summary_metrics
from sakd.report.teacher_gap import gap_verdict, teacher_gap


def _run(strategy: str, seed: int, val: float, distiller: str = "at") -> tuple[str, dict]:
    return f"t-s/{distiller}-{strategy}/seed{seed}", {
        "teacher": "t", "student": "s", "distiller": distiller, "strategy": strategy,
        "seed": seed, "top1": val - 1, "top5": 99.0, "val_top1": val, "best_val_top1": val,
        "best_epoch": 1, "epochs": 1}


def _results(teacher_val: float | None, alone: list[float]):
    teacher = {"top1": 80.0, "top5": 99.0}
    if teacher_val is not None:
        teacher["val_top1"] = teacher_val
    students = dict([_run("never", s, v) for s, v in enumerate(alone)]
                    + [_run("always", 0, 70.0), _run("adaptive", 0, 71.0)])
    return parse_evaluate({"teachers": {"t": teacher, "s": teacher}, "students": students})


def test_gap_is_teacher_minus_each_student_seed_with_a_t_interval():
    results = _results(80.0, [70.0, 72.0, 74.0])
    diff = teacher_gap(results, ("t", "s"))
    # differences 10, 8, 6: mean 8, sd 2, t(0.975, 2) = 4.3027
    assert diff.mean == pytest.approx(8.0)
    assert diff.low == pytest.approx(8 - 4.3027 * 2 / 3**0.5, abs=1e-3)
    assert diff.high == pytest.approx(8 + 4.3027 * 2 / 3**0.5, abs=1e-3)
    assert gap_verdict(diff).startswith("teacher ahead by more than 2")


def test_a_teacher_that_ties_its_student_is_reported_as_no_gap():
    results = _results(97.0, [98.0, 96.5, 97.2])
    diff = teacher_gap(results, ("t", "s"))
    assert not diff.detectable
    assert gap_verdict(diff).startswith("no detectable gap")
    text = render_results("digits", results)
    assert "Does the teacher have something to teach?" in text
    assert "no detectable gap" in text


def test_summary_json_carries_the_gap_beside_the_pairs():
    summary = summary_metrics(_results(80.0, [70.0, 72.0, 74.0]))
    assert summary["teacher_gap"]["t-s"]["delta"] == pytest.approx(8.0)
    assert summary["teacher_gap"]["t-s"]["seeds"] == 3
    assert "at" in summary["t-s"]  # the adaptive vs always entries are unchanged


def test_older_evaluate_files_without_teacher_val_have_no_gap_row():
    results = _results(None, [70.0, 72.0])
    assert teacher_gap(results, ("t", "s")) is None
    assert "teacher_gap" not in summary_metrics(results)
    assert "Does the teacher" not in render_results("digits", results)
