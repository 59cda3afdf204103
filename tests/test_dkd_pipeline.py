"""DKD end to end on digits: `sakd distill --distiller dkd` with every strategy, MLflow's
per-spot routing at the logit spot, the evaluate stage and the report's DKD row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.distill import run_distill
from pipeline.evaluate import run_evaluate
from pipeline.paths import Layout, run_key
from pipeline.pretrain import run_pretrain
from pipeline.report import run_report
from sakd.spots import list_strategies
from sakd.tracking import MemoryTracker
from tests.studies import fetched_project, tiny_study

pytestmark = pytest.mark.slow  # end to end: fetch, pretrain, distill, evaluate, report


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """digits fetched, resnet14 and resnet8 pretrained (2 epochs), dkd in the matrix."""
    raw = tiny_study("resnet14", "resnet8", ["dkd"], list_strategies(), decision_grid=8)
    raw["distill"]["options"]["dkd"] = {"warmup": 2}
    root = tmp_path_factory.mktemp("project")
    params = fetched_project(root, raw)
    for arch in params.runs.pretrain:
        run_pretrain(params, arch, root, tracker=MemoryTracker(), progress=False)
    return root, params


def test_sakd_distill_dkd_runs_from_the_command_line(project):
    root, _ = project
    result = CliRunner().invoke(app, [
        "distill", "--teacher", "resnet14", "--student", "resnet8", "--distiller", "dkd",
        "--strategy", "adaptive", "--root", str(root), "-q"])
    assert result.exit_code == 0, result.output
    assert "resnet14->resnet8 dkd/adaptive seed 0: final top-1" in result.output
    key = run_key("resnet14", "resnet8", "dkd", "adaptive", 0)
    assert Layout(root, "digits").student(key).is_file()


def test_every_strategy_logs_the_logit_spot_and_the_report_has_a_dkd_row(project):
    root, params = project
    tracker = MemoryTracker()
    for strategy in list_strategies():
        run_distill(params, root, "resnet14", "resnet8", "dkd", strategy, 0, tracker=tracker,
                    progress=False, force=True)
    by_strategy = {r["tags"]["strategy"]: r for r in tracker.runs.values()}
    assert set(by_strategy) == set(list_strategies())
    for strategy, run in by_strategy.items():
        epochs = [m for _, m in run["metrics"] if "route/p_distill/logits" in m]
        assert len(epochs) == 2 and not any(k.startswith("train/distill/") for k in epochs[0])
        p = [m["route/p_distill/logits"] for m in epochs]
        kd = [m["train/kd"] for m in epochs]
        if strategy == "always":
            assert p == [1.0, 1.0] and all(v > 0 for v in kd)
        if strategy == "never":
            assert p == [0.0, 0.0] and kd == [0.0, 0.0]

    evaluated = json.loads(run_evaluate(params, root).read_text())
    assert {s["distiller"] for s in evaluated["students"].values()} == {"dkd"}
    run_report(root, "digits", Path("reports/results.md"), Path("plots/report/digits"))
    report = (root / "reports" / "results.md").read_text()
    assert "| DKD |" in report
