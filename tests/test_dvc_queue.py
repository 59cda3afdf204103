"""`sakd queue --jobs 2` on a small matrix, as a user runs it: DVC's experiment queue trains
the teachers and then the distillation stages two at a time in temp workspaces; the closing
`dvc repro` restores them all from the run-cache and writes the report. The report and MLflow
must hold every cell exactly once, and `dvc status` must be clean afterwards."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.projects import GIT, clean_env, copy_project, sh

STRATEGIES, SEEDS = ["adaptive", "always"], [0, 1]


def _project(dest: Path) -> None:
    copy_project(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["runs"] = {"pretrain": ["resnet14", "resnet8"], "pairs": [{"teacher": "resnet14",
                      "student": "resnet8"}], "distillers": ["kd"],
                      "strategies": STRATEGIES, "seeds": SEEDS}
    for section in ("pretrain", "distill"):
        params[section].update(epochs=2, milestones=[1])
    params["distill"]["decision_grid"] = 0
    sens = params["sensitivity"]
    sens.update(epochs=1, n_trials=1)
    sens["baseline_seeds" if "baseline_seeds" in sens else "baseline"] = (
        0 if "baseline_seeds" in sens else False)
    (dest / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_two_queue_workers_run_the_matrix_and_the_report_holds_every_cell_once(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _project(repo)
    env = clean_env()
    sh(["git", "init", "-q"], repo, env)
    sh([*GIT, "add", "-A"], repo, env)
    sh([*GIT, "commit", "-qm", "study"], repo, env)

    said = sh([sys.executable, "-m", "pipeline.cli", "queue", "--jobs", "2"], repo, env)
    assert "$ dvc exp run --run-all --jobs 2" in said
    assert said.count("$ dvc exp run --queue") == 2 + 2 + 1  # teachers; kd x 2 strategies; tune

    evaluated = json.loads((repo / "metrics" / "evaluate" / "digits.json").read_text())
    cells = {f"resnet14-resnet8/kd-{s}/seed{k}" for s in STRATEGIES for k in SEEDS}
    assert set(evaluated["students"]) == cells
    report = (repo / "reports" / "results.md").read_text()
    assert "n=2" in report or "(2)" in report  # both seeds of each strategy made the table

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    def runs(experiment: str) -> list:
        exp = client.get_experiment_by_name(experiment)
        return client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    distill = runs("sakd-distill")
    per_cell = Counter(f"{r.data.tags['strategy']}/seed{r.data.tags['seed']}" for r in distill)
    assert per_cell == Counter({f"{s}/seed{k}": 1 for s in STRATEGIES for k in SEEDS})
    assert all(r.info.status == "FINISHED" for r in distill)
    assert all(r.data.tags.get("dvc.exp_name", "").startswith("distill-pair0-kd-")
               for r in distill)  # trained by queued experiments, not by the closing repro
    assert Counter(r.data.tags["arch"] for r in runs("sakd-pretrain")) == Counter(
        {"resnet14": 1, "resnet8": 1})

    status = sh(["dvc", "status"], repo, env)
    assert "up to date" in status, status
