"""`dvc repro` itself, on a shrunk copy of the default study: every stage runs and the report
comes out, exactly as a user's `dvc repro` would run it (separate processes, dvc.yaml wiring)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, on_digits


def _copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if name.startswith("tests/") or not (REPO / name).exists():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_and_writes_the_report(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    _copy_project(tmp_path)
    params = on_digits(yaml.safe_load((tmp_path / "params.yaml").read_text()))
    params["runs"] = {
        "pretrain": ["resnet14", "resnet8"],
        "pairs": [{"teacher": "resnet14", "student": "resnet8"}],
        "distillers": ["kd"],
        "strategies": ["adaptive", "always"],
        "seeds": [0],
    }
    for section in ("pretrain", "distill"):
        params[section].update(epochs=2, milestones=[1])
    params["sensitivity"].update(epochs=1, n_trials=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=tmp_path, check=True)
    env_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = subprocess.run(["dvc", "repro"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "MLFLOW_TRACKING_URI": env_uri})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = (tmp_path / "reports" / "results.md").read_text()
    assert "resnet14 → resnet8" in report and "Adap." in report
    evaluated = json.loads((tmp_path / "metrics" / "evaluate" / "digits.json").read_text())
    assert set(evaluated["students"]) == {
        "resnet14-resnet8/kd-adaptive/seed0", "resnet14-resnet8/kd-always/seed0"}
    assert (tmp_path / "metrics" / "sensitivity.json").is_file()
    assert "## Compression" in report  # the compression stage ran before the report
    registry = json.loads((tmp_path / "metrics" / "registry" / "digits.json").read_text())
    assert registry["sakd-digits-resnet14-resnet8"]["alias"] == "champion"
    status = subprocess.run(["dvc", "status"], cwd=tmp_path, capture_output=True, text=True)
    assert "up to date" in status.stdout  # a second `dvc repro` would do nothing
    _edits_re_run_only_the_stages_that_run_the_code(tmp_path)


def _stale(root: Path) -> set[str]:
    """The stages `dvc status` shows changed (`pretrain@resnet8` -> `pretrain`)."""
    run = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    return {name.split("@")[0].split(":")[-1] for name in json.loads(run.stdout or "{}")}


def _edits_re_run_only_the_stages_that_run_the_code(root: Path) -> None:
    """Touching a distiller stales distillation and what follows it, never fetch or a
    teacher's pretraining; touching a spot module stales no pretraining either."""
    for changed in ("sakd/distillers/at.py", "sakd/spots/tau.py"):
        path = root / changed
        text = path.read_text()
        path.write_text(text + "\n# touched\n")
        stale = _stale(root)
        path.write_text(text)
        assert "distill" in stale and not stale & {"fetch", "pretrain"}, (changed, stale)
    assert _stale(root) == set()
