"""`sakd queue --jobs 2` on a small matrix, as a user runs it: DVC's experiment queue trains
the teachers and then the distillation stages two at a time in temp workspaces; the closing
`dvc repro` restores them all from the run-cache and writes the report. The report and MLflow
must hold every cell exactly once, and `dvc status` must be clean afterwards."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from tests.projects import GIT, clean_env, commit_study, kd_study, sh

STRATEGIES, SEEDS = ["adaptive", "always"], [0, 1]


@pytest.mark.slow
def test_two_queue_workers_run_the_matrix_and_the_report_holds_every_cell_once(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    kd_study(repo, STRATEGIES, SEEDS, epochs=2)
    env = clean_env()
    commit_study(repo, env)

    said = sh([sys.executable, "-m", "pipeline.cli", "queue", "--jobs", "2"], repo, env)
    assert "$ dvc exp run --run-all --jobs 2" in said
    assert said.count("$ dvc exp run --queue") == 2 + 2 + 1  # teachers; kd x 2 strategies; tune

    evaluated = json.loads((repo / "metrics" / "evaluate" / "digits.json").read_text())
    cells = {f"resnet14-resnet8/kd-{s}/seed{k}" for s in STRATEGIES for k in SEEDS}
    assert set(evaluated["students"]) == cells
    report = (repo / "reports" / "results.md").read_text()
    assert "| KD | adaptive − always |" in report  # the paired interval over both seeds
    assert report.count("(n=2)") >= 2 and "(n=1)" not in report  # no seed missing

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


@pytest.mark.slow
def test_slices_on_two_machines_then_one_repro_restores_every_stage(tmp_path):
    """The README's several-machines recipe on one machine: two clones each run their slice
    against one MLflow store and one DVC remote (run-cache pushed), a third clone pulls and
    its `dvc repro` retrains nothing."""
    origin, remote = tmp_path / "origin", tmp_path / "remote"
    origin.mkdir()
    kd_study(origin, STRATEGIES, SEEDS, epochs=2)
    env = {**clean_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared-mlflow.db'}"}
    sh(["git", "init", "-q"], origin, env)
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], origin, env)
    sh([*GIT, "add", "-A"], origin, env)
    sh([*GIT, "commit", "-qm", "study"], origin, env)
    machines = []
    for name in ("one", "two", "three"):
        sh(["git", "clone", "-q", str(origin), str(tmp_path / name)], tmp_path, env)
        machines.append(tmp_path / name)
    one, two, three = machines
    queue = [sys.executable, "-m", "pipeline.cli", "queue", "--jobs", "2", "--slice"]

    sh(["dvc", "repro", "pretrain"], one, env)  # the teachers, once
    sh(["dvc", "push", "--run-cache"], one, env)
    said = sh([*queue, "1/2"], one, env)
    assert "dvc push --run-cache" in said and "$ dvc repro\n" not in said
    sh(["dvc", "push", "--run-cache"], one, env)
    sh(["dvc", "fetch", "--run-cache"], two, env)
    sh([*queue, "2/2", "--pull"], two, env)
    sh(["dvc", "push", "--run-cache"], two, env)

    sh(["dvc", "fetch", "--run-cache"], three, env)
    said = sh(["dvc", "repro", "--pull"], three, env)
    trained = [line for line in said.splitlines() if line.startswith("Running stage")
               and any(g in line for g in ("'pretrain", "'distill", "'sensitivity"))]
    assert trained == [], trained  # every training stage came from the run-cache
    evaluated = json.loads((three / "metrics" / "evaluate" / "digits.json").read_text())
    assert set(evaluated["students"]) == {
        f"resnet14-resnet8/kd-{s}/seed{k}" for s in STRATEGIES for k in SEEDS}

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("sakd-distill")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert Counter(r.data.tags["run_path"] for r in runs) == Counter(
        {f"digits/resnet14-resnet8/kd-{s}/seed{k}": 1 for s in STRATEGIES for k in SEEDS})
