"""The documented offline flow through DVC: an archive placed where the message says survives
`dvc repro fetch` (DVC deletes the stage's output folder first) and is used."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fakedata import write_cifar100_archive

from tests.conftest import REPO, on_digits
from tests.test_dvc_repro import _copy_project

# Runs in every `sakd` process DVC starts: the official md5 becomes the fake archive's (as the
# in-process fetch tests monkeypatch it) and the network is unreachable.
HOOK = """
import dataclasses, os
from sakd.data import cifar100, download
cifar100.Cifar100Source.remote = dataclasses.replace(
    cifar100.ARCHIVE, md5=os.environ["SAKD_TEST_CIFAR_MD5"])
def _offline(url, dest, timeout_s=60.0):
    raise OSError("[Errno -3] Temporary failure in name resolution")
download.download_url = _offline
"""


def _dvc(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_a_placed_archive_survives_dvc_repro_fetch_and_is_used(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    project = tmp_path / "project"
    _copy_project(project)
    params = on_digits(yaml.safe_load((project / "params.yaml").read_text()))
    params["data"]["dataset"] = "cifar100"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=project, check=True)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK)
    fake = write_cifar100_archive(tmp_path / "cifar-100-python.tar.gz")
    env = {**os.environ, "SAKD_TEST_CIFAR_MD5": fake.md5,
           "PYTHONPATH": os.pathsep.join([str(hooks), str(REPO)])}

    offline = _dvc(["repro", "fetch"], project, env)  # nothing placed yet: says where to put it
    placed = project / "data" / "downloads" / "cifar-100-python.tar.gz"
    assert offline.returncode != 0
    assert str(placed) in offline.stdout + offline.stderr

    placed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fake.path, placed)
    for args in (["repro", "fetch"], ["repro", "--force", "fetch"]):
        run = _dvc(args, project, env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert placed.is_file(), f"`dvc {' '.join(args)}` deleted the placed archive"
        assert (project / "data" / "cifar100" / "manifest.json").is_file()
        assert (project / "data" / "cifar100" / "train.pt").is_file()
