"""A copy of this project for tests that run DVC on it (its files as git sees them, tests
excepted), and a shell helper that shows the command's output when it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO, on_digits

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def copy_project(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, so uncommitted work is tested too."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if not name.startswith("tests/") and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def sh(cmd: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 1200) -> str:
    """Run a command; on failure the assertion shows the end of its output. A command that
    outlives `timeout_s` fails the test (a hung DVC queue must not hang the suite)."""
    try:
        run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env,
                             timeout=timeout_s)
    except subprocess.TimeoutExpired as hung:
        out = hung.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out  # bytes on 3.11
        tail = out[-4000:]
        raise AssertionError(f"{cmd} still running after {timeout_s:.0f} s:\n{tail}") from None
    assert run.returncode == 0, f"{cmd}:\n{run.stdout[-4000:]}\n{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def clean_env() -> dict[str, str]:
    """This process's environment without the stores and DVC variables a test must not
    inherit (the copy's own mlflow.db and optuna.db are the ones under test)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "SAKD_OPTUNA_STORAGE") and not k.startswith("DVC_")}


def kd_study(dest: Path, strategies: list[str], seeds: list[int], epochs: int) -> None:
    """This project copied into `dest` as the smallest queueable study: resnet14 -> resnet8 KD
    on digits, `epochs` per training run (one decay), no decision grid, and a one-trial tuning
    stage without baseline seeds."""
    copy_project(dest)
    params = on_digits(yaml.safe_load((dest / "params.yaml").read_text()))
    params["runs"] = {"pretrain": ["resnet14", "resnet8"], "pairs": [{"teacher": "resnet14",
                      "student": "resnet8"}], "distillers": ["kd"],
                      "strategies": strategies, "seeds": seeds}
    for section in ("pretrain", "distill"):
        params[section].update(epochs=epochs, milestones=[1])
    params["distill"]["decision_grid"] = 0
    params["sensitivity"].update(epochs=1, n_trials=1, baseline_seeds=0)
    (dest / "params.yaml").write_text(yaml.safe_dump(params))


def commit_study(repo: Path, env: dict[str, str]) -> None:
    """`repo` as a git repository with every file committed: DVC's queue runs from a commit."""
    sh(["git", "init", "-q"], repo, env)
    sh([*GIT, "add", "-A"], repo, env)
    sh([*GIT, "commit", "-qm", "study"], repo, env)
