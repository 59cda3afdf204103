"""DVC's experiment workflow on a shrunk copy of the project, as a user drives it: `dvc repro`,
`dvc exp show` with numbers, `dvc exp run --temp` rerunning only what changed and logging to
the repository's mlflow.db, top-level plots that render, and push -> fresh clone -> pull ->
`dvc repro` retraining nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import on_digits
from tests.projects import GIT, clean_env, copy_project
from tests.projects import sh as _sh


def _json(cmd: list[str], cwd: Path, env: dict[str, str]):
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, f"{cmd}:\n{run.stderr[-3000:]}"
    return json.loads(run.stdout)


def _project(dest: Path) -> None:
    copy_project(dest)
    params = on_digits(yaml.safe_load((dest / "params.yaml").read_text()))
    params["runs"] = {"pretrain": ["resnet14", "resnet8"], "pairs": [{"teacher": "resnet14",
                      "student": "resnet8"}], "distillers": ["at"],
                      "strategies": ["adaptive", "always"], "seeds": [0]}
    for section in ("pretrain", "distill"):
        params[section].update(epochs=2, milestones=[1])
    params["distill"]["decision_grid"] = 0
    params["sensitivity"].update(epochs=1, n_trials=1, baseline_seeds=0)
    (dest / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_dvc_experiments_workflow(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    _project(repo)
    env = clean_env()
    _sh(["git", "init", "-q"], repo, env)
    _sh(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], repo, env)
    _sh([*GIT, "add", "-A"], repo, env)
    _sh([*GIT, "commit", "-qm", "project"], repo, env)
    _sh(["dvc", "repro"], repo, env)
    _sh([*GIT, "add", "-A"], repo, env)
    _sh([*GIT, "commit", "-qm", "results"], repo, env)

    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    entry = summary["resnet14-resnet8"]["at"]
    assert set(entry) >= {"adaptive", "always", "delta", "seeds"} and entry["seeds"] == 1

    # --temp: runs in a copy under .dvc/tmp; only the sensitivity stage (and the report that
    # reads it) reruns, and its MLflow runs land in this repository's mlflow.db.
    out = _sh(["dvc", "exp", "run", "--temp", "-n", "more-trials",
               "-S", "sensitivity.n_trials=2"], repo, env)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"sensitivity", "report"}, out[-2000:]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    tagged = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`dvc.exp_name` = 'more-trials'")
    assert tagged and all(r.data.tags["dvc.baseline_rev"] for r in tagged)
    shown = _json(["dvc", "exp", "show", "--json"], repo, env)
    exps = {e.get("name") or e["rev"]: e for b in shown for e in [b, *(
        x for ex in (b.get("experiments") or []) for x in ex.get("revs", []))]}
    metrics = exps["more-trials"]["data"]["metrics"]["metrics/summary.json"]["data"]
    assert metrics["resnet14-resnet8"]["at"]["delta"] == entry["delta"]
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo, env)

    # top-level plots: every chart has data (no FieldNotFoundError), Fig. 3 a line per spot
    plots = _json(["dvc", "plots", "show", "--json"], repo, env)
    assert not plots.get("errors"), plots.get("errors")
    spots = plots["data"]["plots/report/digits/spots/resnet14-resnet8_at.csv"][0]
    assert len({row["spot"] for row in spots["content"]["data"]["values"]}) > 1

    # push, clone, pull: finished stages come back without retraining
    _sh(["dvc", "push"], repo, env)
    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    _sh(["dvc", "pull"], clone, env)
    out = _sh(["dvc", "repro"], clone, env)
    assert "Running stage" not in out, out[-2000:]
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], clone, env)
