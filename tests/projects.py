"""A copy of this project for tests that run DVC on it (its files as git sees them, tests
excepted), and a shell helper that shows the command's output when it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def copy_project(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, so uncommitted work is tested too."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if not name.startswith("tests/") and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; on failure the assertion shows the end of its output."""
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, f"{cmd}:\n{run.stdout[-4000:]}\n{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def clean_env() -> dict[str, str]:
    """This process's environment without the stores and DVC variables a test must not
    inherit (the copy's own mlflow.db and optuna.db are the ones under test)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "SAKD_OPTUNA_STORAGE") and not k.startswith("DVC_")}
