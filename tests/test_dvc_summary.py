"""The DVC-facing pieces without DVC: metrics/summary.json, the chart files, the store root."""

from __future__ import annotations

import pytest

from pipeline.paths import Layout, dvc_experiment_tags, store_root
from sakd.report import RouteCurve, parse_evaluate, summary_metrics
from sakd.report.curves import chart_title, spots_csv_text, strategies_csv_text
from sakd.report.val_curves import band


def _run(distiller: str, strategy: str, seed: int, top1: float) -> tuple[str, dict]:
    return f"t-s/{distiller}-{strategy}/seed{seed}", {
        "teacher": "t", "student": "s", "distiller": distiller, "strategy": strategy,
        "seed": seed, "top1": top1, "top5": 99.0, "val_top1": top1, "best_val_top1": top1,
        "best_epoch": 1, "epochs": 1,
    }


def test_summary_pairs_adaptive_and_always_by_seed():
    students = dict([_run("kd", "adaptive", 0, 72.0), _run("kd", "adaptive", 1, 74.0),
                     _run("kd", "always", 0, 71.0), _run("kd", "always", 1, 72.0),
                     _run("kd", "adaptive", 2, 99.0),  # no `always` partner: not in the means
                     _run("at", "never", 0, 60.0)])    # neither strategy: no entry
    summary = summary_metrics(parse_evaluate({"teachers": {}, "students": students}))
    # paired differences 1.0 and 2.0: mean 1.5, sd 0.7071, t(0.975, df=1) = 12.706
    half = 12.7062 * 0.70711 / 2**0.5
    entry = summary["t-s"]["kd"]
    assert {k: entry[k] for k in ("adaptive", "always", "delta", "seeds")} == {
        "adaptive": 73.0, "always": 71.5, "delta": 1.5, "seeds": 2}
    assert entry["delta_ci_low"] == pytest.approx(1.5 - half, abs=1e-3)
    assert entry["delta_ci_high"] == pytest.approx(1.5 + half, abs=1e-3)
    assert list(summary) == ["t-s"] and list(summary["t-s"]) == ["kd"]


def test_strategies_chart_averages_seeds_per_epoch_and_names_pair_and_distiller():
    bands = {"always": band([{1: 10.0, 2: 20.0}]),
             "adaptive": band([{1: 10.0, 2: 30.0, 3: 40.0}, {1: 20.0, 2: 20.0, 3: 50.0}])}
    title = chart_title("digits", "resnet20", "resnet8", "at")
    assert title == "digits: resnet20 → resnet8, at"
    text = strategies_csv_text(bands, title)
    t = '"digits: resnet20 → resnet8, at"'  # quoted: the title holds a comma
    assert text.splitlines() == ["epoch,strategy,val_top1,chart", f"1,adaptive,15.0000,{t}",
                                 f"2,adaptive,25.0000,{t}", f"3,adaptive,45.0000,{t}",
                                 f"1,always,10.0000,{t}", f"2,always,20.0000,{t}"]


def test_spots_chart_has_one_row_per_epoch_and_spot():
    curve = RouteCurve(("spot2", "logits"), (1, 2), ((0.5, 1.0), (0.25, 0.75)), (1, 1))
    assert spots_csv_text(curve, "t").splitlines() == [
        "epoch,spot,p_distill,chart", "1,spot2,0.500000,t", "1,logits,1.000000,t",
        "2,spot2,0.250000,t", "2,logits,0.750000,t"]


def test_stores_live_in_the_repository_dvc_came_from(tmp_path):
    origin, temp = tmp_path / "repo", tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "x"
    temp.mkdir(parents=True)
    assert store_root(temp, env={}) == temp.resolve()
    assert store_root(temp, env={"DVC_ROOT": str(origin)}) == origin.resolve()
    tags = dvc_experiment_tags({"DVC_EXP_NAME": "rural-bice", "DVC_EXP_BASELINE_REV": "abc"})
    assert tags == {"dvc.exp_name": "rural-bice", "dvc.baseline_rev": "abc"}
    assert dvc_experiment_tags({}) == {}


def test_resume_state_is_not_a_dvc_output(tmp_path):
    layout = Layout(tmp_path, "digits")
    ckpt = layout.pretrained("resnet8")
    assert layout.resume(ckpt) == tmp_path / ".sakd" / "resume" / ckpt.relative_to(tmp_path)


def test_every_stage_reads_mlflow_from_the_repository_dvc_came_from(tmp_path, monkeypatch):
    """The register stage of a `--temp`/queued experiment must find the runs the distill
    stages logged: the tracking URI is the origin's, not the temp copy's."""
    from pipeline.settings import tracking_uri

    origin, temp = tmp_path / "repo", tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "x"
    temp.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(origin))
    assert tracking_uri(None, temp) == f"sqlite:///{origin.resolve() / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    assert tracking_uri(None, temp) == f"sqlite:///{temp.resolve() / 'mlflow.db'}"
