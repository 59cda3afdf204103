"""A project copied (or cloned) with its MLflow store still loads every model from the copy, and
new runs land in the copy: MLflow records absolute artifact folders (sakd.tracking.relocation)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from pipeline.distill import run_distill
from pipeline.register import ALIAS, registered_name, run_register
from pipeline.saved_models import load_from_mlflow
from sakd.config import load_params
from sakd.data import fetch_dataset
from sakd.tracking import MLflowTracker
from sakd.tracking.relocation import moved_location, readable_source, rehome_experiment
from tests.conftest import REPO
from tests.projects import clean_env, sh
from tests.servers import mlflow_server
from tests.studies import fetched_project, tiny_study, trained_study

NAME = registered_name("digits", "resnet8", "resnet8")


def _study(root: Path) -> dict:
    """A finished tiny study: teacher, one distilled student, evaluated and registered."""
    raw = tiny_study("resnet8", "resnet8", ["kd"], ["always"])
    root.mkdir()
    params = fetched_project(root, raw)
    run_register(params, root, trained_study(root, params))
    return raw


@pytest.mark.slow  # trains a tiny study, then runs the CLI on its copy
def test_a_copied_project_with_its_store_loads_and_logs_into_the_copy(tmp_path, one_thread):
    original, copy = tmp_path / "original", tmp_path / "copy"
    raw = _study(original)
    shutil.copytree(original, copy)
    original.rename(tmp_path / "hidden")  # the folder the store recorded is gone
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "export", f"models:/{NAME}@{ALIAS}",
         "--format", "torchscript", "--output", str(tmp_path / "student.ts")],
        cwd=copy, capture_output=True, text=True, timeout=600,
        env={**clean_env(), "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "student.ts").is_file() and "verified" in out.stdout

    params = load_params(raw)
    run_register(params, copy, uri)  # loads the champion's model before moving the alias
    client = MlflowClient(uri)
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1
    run_id = client.get_model_version_by_alias(NAME, ALIAS).run_id
    net, shape = load_from_mlflow(f"runs:/{run_id}/model", uri)
    assert shape == (3, 8, 8) and net(torch.zeros(1, *shape)).shape == (1, 10)

    tracker = MLflowTracker(uri, artifact_root=copy / "mlruns")  # a new run in the copy
    run_distill(params, copy, "resnet8", "resnet8", "kd", "adaptive", 0, tracker=tracker,
                progress=False)
    new = client.search_runs([client.get_experiment_by_name("sakd-distill").experiment_id],
                             "tags.strategy = 'adaptive'")[0]
    assert new.info.artifact_uri.startswith((copy / "mlruns").resolve().as_uri())
    assert not (tmp_path / "original").exists()  # nothing written to the old folder


def test_a_missing_recorded_folder_maps_onto_the_same_tail_under_mlruns(tmp_path):
    artifacts = tmp_path / "copy" / "mlruns"
    (artifacts / "sakd-distill" / "models" / "m-1" / "artifacts").mkdir(parents=True)
    old = "file:///gone/project/mlruns/sakd-distill/models/m-1/artifacts"
    assert moved_location(old, artifacts) == (
        artifacts / "sakd-distill" / "models" / "m-1" / "artifacts").resolve().as_uri()
    assert moved_location("file:///gone/project/mlruns/sakd-distill/models/m-2/artifacts",
                          artifacts) is None  # nothing to map onto: MLflow's own error
    here = (artifacts / "sakd-distill").as_uri()
    assert moved_location(here, artifacts) is None  # in place: used as recorded
    assert moved_location("mlflow-artifacts:/1/abc/artifacts", artifacts) is None
    assert readable_source("models:/x@champion", "http://127.0.0.1:1") == "models:/x@champion"


def test_only_a_moved_sqlite_store_of_sakds_layout_is_rehomed(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    old = "file:///gone/project/mlruns/sakd-distill"
    exp = client.create_experiment("sakd-distill", artifact_location=old)
    home = tmp_path / "mlruns" / "sakd-distill"
    assert rehome_experiment(uri, exp, old, tmp_path / "elsewhere" / "x") == old
    assert rehome_experiment("postgresql://h/db", exp, old, home) == old
    assert rehome_experiment(uri, exp, old, home) == home.resolve().as_uri()
    assert client.get_experiment(exp).artifact_location == home.resolve().as_uri()
    custom = "file:///data/my-artifacts"  # not sakd's layout: the user's choice stays
    assert rehome_experiment(uri, exp, custom, home) == custom


def test_behind_a_tracking_server_the_server_chooses_the_artifact_location(tmp_path):
    tracker = MLflowTracker("http://127.0.0.1:5999", artifact_root=tmp_path / "mlruns")
    assert tracker._artifact_home("sakd-distill") is None
    local = MLflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "mlruns")
    assert local._artifact_home("sakd-distill") == tmp_path / "mlruns" / "sakd-distill"


@pytest.mark.slow  # a real `mlflow server`, a pretrain on one "machine", an export on another
def test_a_shared_tracking_server_keeps_artifacts_for_every_machine(tmp_path, default_params):
    """The README's shared store: `mlflow server --artifacts-destination` (artifacts proxied,
    `mlflow-artifacts:/` URIs); a model logged from one folder exports from another."""
    default_params["runtime"].update(device="cpu", threads=1)
    default_params["pretrain"].update(epochs=2, milestones=[1])
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    for folder in machines:
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(default_params))
    fetch_dataset("digits", machines[0] / "data")
    (tmp_path / "server").mkdir()
    with mlflow_server(f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
                       tmp_path / "server" / "mlruns") as (url, _):
        env = {**clean_env(), "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
        sh([sys.executable, "-m", "pipeline.cli", "pretrain", "--arch", "resnet8", "-q"],
           machines[0], env)
        (run,) = MlflowClient(url).search_runs(
            [MlflowClient(url).get_experiment_by_name("sakd-pretrain").experiment_id])
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        assert not (machines[0] / "mlruns").exists()  # nothing kept on the training machine
        out = sh([sys.executable, "-m", "pipeline.cli", "export", f"runs:/{run.info.run_id}/model",
                  "--format", "torchscript", "--output", "teacher.ts"], machines[1], env)
        assert "verified" in out and (machines[1] / "teacher.ts").is_file()
