"""Reading a study back: rows, best, Fig. 4 sweeps, importances, report text and PNGs."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sakd.tuning.plots import history_png, sweep_png
from sakd.tuning.report import StudySummary, render_sensitivity, summary_metrics
from sakd.tuning.results import best_row, history, importances, state_counts, sweep, trial_rows

BASE = {"beta3": 1.0, "tau0": 5.0, "tau_min": 0.5, "schedule": "exponential"}
DISTS = {"beta3": FloatDistribution(0.1, 10.0, log=True), "tau0": FloatDistribution(1.0, 10.0)}


def trial(state, value=None, attrs=None, steps=None, **params):
    return create_trial(
        state=state, value=value, params=params, distributions={k: DISTS[k] for k in params},
        user_attrs=attrs or {}, intermediate_values=steps or {},
    )


@pytest.fixture
def study() -> optuna.Study:
    s = optuna.create_study(direction="maximize")
    for t in [
        trial(TrialState.COMPLETE, 80.0, beta3=0.1, tau0=2.0),
        trial(TrialState.COMPLETE, 90.0, beta3=1.0, tau0=5.0),
        trial(TrialState.PRUNED, steps={1: 40.0, 2: 45.0}, beta3=9.0, tau0=9.0),
        trial(TrialState.FAIL, attrs={"fail_reason": "TrainingDiverged: loss is nan"},
              beta3=5.0, tau0=3.0),
        trial(TrialState.FAIL, attrs={"interrupted": "KeyboardInterrupt"}, beta3=2.0,
              tau0=4.0),
        trial(TrialState.COMPLETE, 90.0, beta3=3.0, tau0=8.0),
    ]:
        s.add_trial(t)
    return s


def test_rows_label_every_outcome(study):
    rows = trial_rows(study.trials, {"tau_min": 0.5, "schedule": "exponential"})
    assert [r.state for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "INTERRUPTED",
                                       "COMPLETE"]
    assert rows[2].value == 45.0 and rows[2].last_epoch == 2  # pruned: last reported epoch
    assert rows[3].reason == "TrainingDiverged: loss is nan"
    assert rows[4].reason == "KeyboardInterrupt"
    assert rows[0].values == {"beta3": 0.1, "tau0": 2.0, "tau_min": 0.5,
                              "schedule": "exponential"}
    assert state_counts(rows) == {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1, "INTERRUPTED": 1,
                                  "RUNNING": 0}
    assert best_row(rows).number == 1  # a tie goes to the earlier trial
    assert history(rows) == [
        {"trial": 0, "val_top1": 80.0, "best_val_top1": 80.0},
        {"trial": 1, "val_top1": 90.0, "best_val_top1": 90.0},
        {"trial": 5, "val_top1": 90.0, "best_val_top1": 90.0},
    ]


def test_grid_sweeps_keep_only_their_own_points(study):
    rows = trial_rows(study.trials, {"tau_min": 0.5, "schedule": "exponential"})
    # grid: the beta3 curve is the trials whose other values are all at the base point
    assert sweep(rows, "beta3", "grid", BASE) == [(1.0, 90.0)]
    assert sweep(rows, "tau0", "grid", {**BASE, "beta3": 0.1}) == [(2.0, 80.0)]
    # search: every complete trial, sorted along the axis
    assert sweep(rows, "beta3", "search", BASE) == [(0.1, 80.0), (1.0, 90.0), (3.0, 90.0)]


def test_importances_need_enough_varied_trials(study):
    imp, note = importances(study)
    assert set(imp) == {"beta3", "tau0"} and sum(imp.values()) == pytest.approx(1.0)
    assert note == ""
    small = optuna.create_study(direction="maximize")
    small.add_trial(trial(TrialState.COMPLETE, 1.0, beta3=1.0))
    assert importances(small) == ({}, "needs at least 3 complete trials (1 so far)")
    flat = optuna.create_study(direction="maximize")
    for b in (0.5, 1.0, 2.0):
        flat.add_trial(trial(TrialState.COMPLETE, 7.0, beta3=b))
    assert "same value" in importances(flat)[1]


def summary(study, **kw) -> StudySummary:
    rows = trial_rows(study.trials, {"tau_min": 0.5, "schedule": "exponential"})
    return StudySummary(
        study="s1", storage="sqlite:///optuna.db", mode="search", dataset="digits",
        teacher="resnet20", student="resnet8", distiller="kd", epochs=2, seed=0, target=6,
        space={k: "…" for k in BASE}, rows=rows, baseline=85.5,
        importances={"beta3": 0.7, "tau0": 0.3},
        figures=[("accuracy vs beta3", "../plots/sensitivity/beta3.png")], **kw,
    )


def test_metrics_and_report_give_best_baseline_and_counts(study):
    s = summary(study)
    m = summary_metrics(s)
    assert m["best_value"] == 90.0 and m["best_trial"] == 1
    assert m["best_params"] == {"beta3": 1.0, "tau0": 5.0, "tau_min": 0.5,
                                "schedule": "exponential"}
    assert m["gain_over_always"] == pytest.approx(4.5)
    assert (m["n_complete"], m["n_pruned"], m["n_failed"], m["n_interrupted"]) == (3, 1, 1, 1)
    text = render_sensitivity(s)
    assert "Trial 1: **90.00%** (+4.50 points over standard distillation)" in text
    assert "**85.50%**" in text
    assert "| beta3 | 0.700 |" in text
    assert "![accuracy vs beta3](../plots/sensitivity/beta3.png)" in text
    assert "| 3 | fail |" in text and "TrainingDiverged: loss is nan" in text
    assert "1 interrupted (not counted, re-run)" in text
    assert "optuna-dashboard sqlite:///optuna.db" in text


def test_pngs_are_valid_and_reproducible():
    points = [(0.1, 80.0), (1.0, 90.0), (10.0, 85.0)]
    a = sweep_png(points, "beta3", "Fig. 4", baseline=84.0, log_x=True)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == sweep_png(points, "beta3", "Fig. 4", baseline=84.0, log_x=True)
    assert sweep_png([], "tau0", "empty")[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_png_is_valid_and_reproducible(study):
    a = history_png(study, "history", 84.0)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == history_png(study, "history", 84.0)
    empty = optuna.create_study(direction="maximize")
    assert history_png(empty, "history", 84.0)[:8] == b"\x89PNG\r\n\x1a\n"
