"""Reading a study back: rows, best, Fig. 4 sweeps and noise band, importances, report text
and PNGs."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image

from sakd.tuning.baseline import NoiseBand
from sakd.tuning.plots import history_png, sweep_png
from sakd.tuning.report import (
    StudySummary,
    best_row,
    render_sensitivity,
    state_counts,
    summary_metrics,
    trial_rows,
)
from sakd.tuning.results import baseline_columns, history, importances, sweep

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


THREE = NoiseBand((0, 1, 2), (85.0, 86.0, 85.5))  # mean 85.5, sample sd 0.5


def summary(study, baseline: NoiseBand | None = THREE, **kw) -> StudySummary:
    rows = trial_rows(study.trials, {"tau_min": 0.5, "schedule": "exponential"})
    return StudySummary(
        study="s1", storage="sqlite:///optuna.db", mode="search", dataset="digits",
        teacher="resnet20", student="resnet8", distiller="kd", epochs=2, seed=0, target=6,
        space={k: "…" for k in BASE}, rows=rows, baseline=baseline,
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
    assert "**85.50 ± 0.50%** (mean ± sample sd over 3 seeds: 85.00, 86.00, 85.50)" in text
    assert (m["baseline_always_top1"], m["baseline_seeds"]) == (85.5, 3)
    assert m["baseline_always_std"] == pytest.approx(0.5)
    assert "| beta3 | 0.700 |" in text
    assert "![accuracy vs beta3](../plots/sensitivity/beta3.png)" in text
    assert "| 3 | fail |" in text and "TrainingDiverged: loss is nan" in text
    assert "1 interrupted (not counted, re-run)" in text
    assert "optuna-dashboard sqlite:///optuna.db" in text


def test_pngs_are_valid_and_reproducible():
    points = [(0.1, 80.0), (1.0, 90.0), (10.0, 85.0)]
    a = sweep_png(points, "beta3", "Fig. 4", baseline=THREE, log_x=True)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == sweep_png(points, "beta3", "Fig. 4", baseline=THREE, log_x=True)
    assert sweep_png([], "tau0", "empty")[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_png_is_valid_and_reproducible(study):
    a = history_png(study, "history", THREE)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == history_png(study, "history", THREE)
    empty = optuna.create_study(direction="maximize")
    assert history_png(empty, "history", THREE)[:8] == b"\x89PNG\r\n\x1a\n"


def test_noise_band_is_mean_and_sample_sd_over_seeds():
    band = NoiseBand.from_values({2: 98.5, 0: 97.7, 1: 98.1})
    assert band.seeds == (0, 1, 2) and band.values == (97.7, 98.1, 98.5)
    assert band.mean == pytest.approx(98.1) and band.std == pytest.approx(0.4)  # n - 1
    assert (band.low, band.high) == (pytest.approx(97.7), pytest.approx(98.5))
    assert [band.side(v) for v in (98.6, 98.1, 97.6)] == ["above", "inside", "below"]
    assert band.label() == ("standard distillation (always), mean ± sd over 3 seeds: "
                            "98.10 ± 0.40%")
    one = NoiseBand((0,), (98.1,))
    assert one.std is None and one.low is None and one.side(99.0) is None
    assert "1 seed" in one.label() and "no band" in one.label()
    with pytest.raises(ValueError, match="one value per seed"):
        NoiseBand((0, 1), (98.1,))


def _band_pixels(png: bytes, background: int = 255) -> int:
    """Pixels of the band's flat grey: 0.3 grey at alpha 0.15 over the axes' `background`
    (white here, Optuna's ggplot grey 229 in the history)."""
    shade = round(0.85 * background + 0.15 * 0.3 * 255)
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    return int((grey & (abs(rgb[..., 0] - shade) <= 1)).sum())


def test_fig4_draws_the_band_only_from_two_seeds(study):
    points = [(0.1, 80.0), (1.0, 90.0), (10.0, 85.0)]
    banded = sweep_png(points, "beta3", "Fig. 4", THREE, log_x=True)
    one_seed = sweep_png(points, "beta3", "Fig. 4", NoiseBand((0,), (85.5,)), log_x=True)
    none = sweep_png(points, "beta3", "Fig. 4", None, log_x=True)
    assert banded != one_seed
    assert _band_pixels(banded) > 20 * max(_band_pixels(one_seed), _band_pixels(none), 1)
    assert _band_pixels(one_seed) < 2 * _band_pixels(none) + 100  # the dashed line alone
    history = history_png(study, "h", THREE)
    history_one = history_png(study, "h", NoiseBand((0,), (85.5,)))
    assert _band_pixels(history, 229) > 20 * max(_band_pixels(history_one, 229), 1)


def test_fig4_csv_columns_carry_mean_sd_and_n():
    assert baseline_columns(THREE) == {"always_top1": 85.5, "always_std": pytest.approx(0.5),
                                       "always_seeds": 3}
    assert baseline_columns(NoiseBand((0,), (85.5,))) == {
        "always_top1": 85.5, "always_std": None, "always_seeds": 1}
    assert baseline_columns(None) == {"always_top1": None, "always_std": None,
                                      "always_seeds": 0}


def test_report_names_the_trials_outside_the_noise_band():
    s = optuna.create_study(direction="maximize")
    for value, b in ((84.0, 0.1), (85.8, 1.0), (87.0, 2.0), (85.2, 3.0)):
        s.add_trial(trial(TrialState.COMPLETE, value, beta3=b, tau0=5.0))
    s.add_trial(trial(TrialState.PRUNED, steps={1: 10.0}, beta3=9.0, tau0=9.0))
    text = render_sensitivity(summary(s))
    assert "mean ± 1 sample sd over 3 seeds: 85.00–86.00%" in text
    assert "- Above the band (better than standard distillation by more than seed noise): " \
           "2 (87.00%)." in text
    assert "- Below the band (worse by more than seed noise): 0 (84.00%)." in text
    assert "- Inside the band: 1 (85.80%), 3 (85.20%). Differences inside it" in text
    assert "are not evidence" in text
    assert "10.00%" not in text.split("## Noise floor")[1].split("##")[0]  # pruned: not judged


def test_one_seed_baseline_has_no_band_and_says_so(study):
    one = NoiseBand((0,), (85.5,))
    s = summary(study, baseline=one)
    m = summary_metrics(s)
    assert (m["baseline_always_top1"], m["baseline_always_std"], m["baseline_seeds"]) == (
        85.5, None, 1)
    assert m["gain_over_always"] == pytest.approx(4.5)
    text = render_sensitivity(s)
    assert "seed 0): **85.50%**." in text
    assert "spread over seeds is undefined and Fig. 4 draws no band" in text
    none = summary(study, baseline=None)
    assert summary_metrics(none)["baseline_seeds"] == 0
    assert summary_metrics(none)["gain_over_always"] is None
    assert "sensitivity.baseline_seeds: 0" in render_sensitivity(none)
