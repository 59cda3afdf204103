"""`sakd export` and `sakd register` never run code from a model, exports are all-or-nothing and
self-contained, bad arguments are refused before any work, and a broken MLflow store is one line.

Tiny untrained zoo networks on temporary sqlite stores: no training, seconds per test.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import warnings
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
import yaml
from mlflow.models import infer_signature
from torch import nn
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import UserError
from pipeline.export import run_export
from sakd.models import create_model
from sakd.tracking import MLflowTracker
from sakd.train.checkpoint import save_checkpoint

runner = CliRunner()
SHAPE = (3, 8, 8)  # digits


def _sakd(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stderr.strip()


def _one_error_line(stderr: str) -> str:
    assert stderr.startswith("error: ") and "\n" not in stderr, stderr
    assert "Traceback" not in stderr
    return stderr


def _checkpoint(path: Path, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("resnet8", 10)
    save_checkpoint({"arch": "resnet8", "num_classes": 10, "dataset": "digits",
                     "modules": {"student": model.state_dict()}}, path)
    return model.eval()


def _logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def _store(tmp_path: Path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# --- A: no code runs from a model ---------------------------------------------------------

class _Payload(nn.Module):
    """Unpickling it calls open(marker, "w"): the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __reduce_ex__(self, protocol):
        return (open, (self.marker, "w"))


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_a_pickled_mlflow_model_is_refused_and_never_unpickled(tmp_path, monkeypatch):
    uri = _store(tmp_path, monkeypatch)
    mlflow.set_tracking_uri(uri)
    marker = tmp_path / "code-ran"
    exp = mlflow.MlflowClient(uri).create_experiment(
        "evil", artifact_location=(tmp_path / "mlruns").as_uri())
    x = np.zeros((2, *SHAPE), np.float32)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.pytorch.log_model(_Payload(marker), name="model", serialization_format="pickle",
                                 signature=infer_signature(x, np.zeros((2, 10), np.float32)))
    marker.unlink(missing_ok=True)  # whatever MLflow itself did while logging
    out = tmp_path / "out.onnx"
    code, err = _sakd("export", f"runs:/{run.info.run_id}/model", "-o", str(out),
                      "--root", str(tmp_path))
    assert not marker.exists(), "the model's pickle ran"
    assert code == 2, err
    assert "never unpickles" in _one_error_line(err) and not out.exists()


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_a_logged_model_exports_from_its_weights_in_eval_mode(tmp_path, monkeypatch):
    """What the pipeline logs (MLflowTracker.log_model) exports from runs:/ and models:/ URIs,
    traced in eval mode (no 'training mode' warning), and equals the network it came from."""
    from sakd.tracking_models import WEIGHTS_PATH

    uri = _store(tmp_path, monkeypatch)
    tracker = MLflowTracker(uri, artifact_root=tmp_path / "mlruns")
    torch.manual_seed(0)
    net = create_model("resnet8", 10).train()
    with tracker.run("exp", "r", {}, {}) as run_id:
        model_uri = tracker.log_model(net, "model", torch.randn(4, *SHAPE))
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    state = torch.load(Path(local) / WEIGHTS_PATH, weights_only=True)
    assert (state["arch"], state["num_classes"], state["input_shape"]) == ("resnet8", 10,
                                                                           list(SHAPE))
    x = np.random.default_rng(0).standard_normal((3, *SHAPE)).astype(np.float32)
    for source in (f"runs:/{run_id}/model", model_uri):
        out = tmp_path / "student.onnx"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = run_export(source, "onnx", out, uri)
        assert not [w for w in caught if "training mode" in str(w.message)]
        assert done.max_abs_diff <= done.atol
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"images": x})[0], _logits(net, x),
                                   atol=1e-4, rtol=0)


# --- B: all-or-nothing, self-contained exports; arguments checked first ------------------

@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_the_onnx_file_alone_loads_elsewhere_and_matches_pytorch(tmp_path):
    import onnxruntime as ort

    model = _checkpoint(tmp_path / "s.pt")
    (tmp_path / "a").mkdir()
    run_export(str(tmp_path / "s.pt"), "onnx", tmp_path / "a" / "s.onnx", "sqlite://")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["s.onnx"]  # one file
    moved = tmp_path / "b" / "s.onnx"
    moved.parent.mkdir()
    shutil.move(tmp_path / "a" / "s.onnx", moved)
    session = ort.InferenceSession(str(moved), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((7, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"images": x})[0], _logits(model, x),
                               atol=1e-4, rtol=0)


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_a_failed_export_leaves_the_previous_file_byte_identical(tmp_path, monkeypatch):
    import sakd.deploy.export as export

    _checkpoint(tmp_path / "a.pt", seed=0)
    _checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "out" / "s.onnx"
    run_export(str(tmp_path / "a.pt"), "onnx", out, "sqlite://")
    before = out.read_bytes()
    real = export._load_onnx
    monkeypatch.setattr(export, "_load_onnx", lambda p: (lambda x: real(p)(x) + 1.0))
    with pytest.raises(UserError, match="differ from PyTorch's"):
        run_export(str(tmp_path / "b.pt"), "onnx", out, "sqlite://")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.onnx"]  # no stray files


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_source_is_never_the_target(tmp_path, monkeypatch, fmt):
    source = tmp_path / "s.pt"
    _checkpoint(source)
    before = source.read_bytes()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    for target in ("s.pt", str(tmp_path / "sub" / ".." / "s.pt")):
        code, err = _sakd("export", "s.pt", "-o", target, "--format", fmt,
                          "--root", str(tmp_path))
        assert code == 2 and "is the source itself" in _one_error_line(err)
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt", "sub"]


@pytest.mark.parametrize("atol", ["nan", "inf", "-1"])
def test_atol_is_checked_before_any_work(tmp_path, atol):
    _checkpoint(tmp_path / "s.pt")
    out = tmp_path / "s.onnx"
    code, err = _sakd("export", str(tmp_path / "s.pt"), "-o", str(out), "--atol", atol,
                      "--root", str(tmp_path))
    assert code == 2 and "--atol must be a finite number >= 0" in _one_error_line(err)
    assert not out.exists()
    # before anything is loaded: a missing source is not even looked at
    code, err = _sakd("export", "missing.pt", "-o", str(out), "--atol", atol,
                      "--root", str(tmp_path))
    assert code == 2 and "--atol" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]


def test_an_output_that_is_a_folder_is_refused_and_nothing_is_left(tmp_path):
    _checkpoint(tmp_path / "s.pt")
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    code, err = _sakd("export", str(tmp_path / "s.pt"), "-o", str(folder), "--format",
                      "torchscript", "--root", str(tmp_path))
    assert code == 2 and "is a folder" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "s.pt"]
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


# --- C: register loads its candidate before moving the alias ------------------------------

def _register_project(root: Path, uri: str, default_params: dict):
    from pipeline.paths import Layout, run_key
    from sakd.config import load_params

    raw = default_params
    raw["runs"] = {"pretrain": ["resnet8"], "pairs": [{"teacher": "resnet8", "student": "resnet8"}],
                   "distillers": ["kd"], "strategies": ["adaptive", "always"], "seeds": [0]}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params, layout = load_params(raw), Layout(root, "digits")
    tracker = MLflowTracker(uri, artifact_root=root / "mlruns")
    keys = [run_key("resnet8", "resnet8", "kd", s, 0) for s in ("adaptive", "always")]
    for key, val in zip(keys, (60.0, 40.0), strict=True):
        with tracker.run("distill", key, {}, {}) as run_id:
            tracker.log_model(create_model("resnet8", 10), "model", torch.randn(2, *SHAPE))
        layout.student(key).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint({"history": [{"val/top1": val}], "run_id": run_id}, layout.student(key))
    # the pretrained student alone competes too; it is never the best here
    layout.pretrained("resnet8").parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"history": [{"val/top1": 10.0}], "run_id": "alone"},
                    layout.pretrained("resnet8"))
    layout.evaluate_metrics().parent.mkdir(parents=True, exist_ok=True)
    layout.evaluate_metrics().write_text(json.dumps({
        "students": {k: {"top1": 1.0} for k in keys}, "teachers": {"resnet8": {"top1": 1.0}}}))
    return params, layout, keys


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_register_keeps_the_alias_when_the_candidate_does_not_load(tmp_path, monkeypatch,
                                                                   default_params):
    from mlflow import MlflowClient

    from pipeline.register import ALIAS, registered_name, run_register

    uri = _store(tmp_path, monkeypatch)
    params, layout, (first, second) = _register_project(tmp_path, uri, default_params)
    run_register(params, tmp_path, uri)
    name = registered_name("digits", "resnet8", "resnet8")
    client = MlflowClient(uri)
    assert client.get_model_version_by_alias(name, ALIAS).tags["run_key"] == first
    state = torch.load(layout.student(second), weights_only=True)
    state["history"][-1]["val/top1"] = 90.0  # now the other run is the champion ...
    save_checkpoint(state, layout.student(second))
    shutil.rmtree(tmp_path / "mlruns")  # ... but its model's files are gone
    code, err = _sakd("register", "--root", str(tmp_path))
    assert code == 2, err
    assert "alias 'champion' not moved" in _one_error_line(err) and second in err
    assert client.get_model_version_by_alias(name, ALIAS).tags["run_key"] == first
    assert len(client.search_model_versions(f"name='{name}'")) == 1


# --- D: a broken tracking store is one line ------------------------------------------------

def test_a_garbage_mlflow_db_ends_distill_and_export_with_one_line(tmp_path, monkeypatch,
                                                                   tiny_params):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    (tmp_path / "mlflow.db").write_bytes(bytes(range(256)) * 16)
    code, err = _sakd("distill", "--teacher", "resnet14", "--student", "resnet8", "--distiller",
                      "kd", "--strategy", "always", "--quiet", "--root", str(tmp_path))
    assert code == 2, err
    line = _one_error_line(err)
    assert "mlflow.db is not a readable MLflow database" in line and "move it aside" in line
    code, err = _sakd("export", "runs:/0123456789abcdef/model", "-o",
                      str(tmp_path / "s.onnx"), "--root", str(tmp_path))
    assert code == 2 and "is not a readable MLflow database" in _one_error_line(err)
    assert not (tmp_path / "s.onnx").exists() and not (tmp_path / "models").exists()


def test_store_problems_name_the_cause_and_what_to_do():
    from sqlalchemy.exc import OperationalError

    from sakd.tracking_errors import TrackingStoreError, store_errors

    locked = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    with (pytest.raises(TrackingStoreError, match=r"is locked by another process .*[Ww]ait"),
          store_errors("sqlite:////x/mlflow.db")):
        raise locked
    with (pytest.raises(TrackingStoreError, match=r"postgresql://u:\*\*\*@h/db"),
          store_errors("postgresql://u:secret@h/db")):
        raise OperationalError("SELECT 1", {}, sqlite3.DatabaseError("malformed"))
    with pytest.raises(ValueError), store_errors("sqlite://"):  # not the store's: unchanged
        raise ValueError(math.nan)


# --- 22.4: the training normalisation inside the exported and served model ----------------

MEAN, STD = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]  # recorded values, not any dataset's constants


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_the_recorded_normalisation_is_inside_the_export(tmp_path):
    import onnxruntime as ort

    from sakd.models.normalise import normalisation_record

    torch.manual_seed(0)
    net = create_model("resnet8", 10).eval()
    save_checkpoint({"arch": "resnet8", "num_classes": 10, "dataset": "digits",
                     "normalisation": normalisation_record(MEAN, STD),
                     "modules": {"student": net.state_dict()}}, tmp_path / "s.pt")
    result = runner.invoke(app, ["export", str(tmp_path / "s.pt"), "-o",
                                 str(tmp_path / "s.onnx"), "--root", str(tmp_path)])
    assert result.exit_code == 0 and "scaled to [0, 1]" in result.stdout
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    x01 = np.random.default_rng(2).random((4, *SHAPE), dtype=np.float32)
    normalised = (x01 - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))
    np.testing.assert_allclose(session.run(None, {"images": x01})[0],
                               _logits(net, normalised.astype(np.float32)), atol=1e-4, rtol=0)


def test_a_bad_recorded_normalisation_is_refused(tmp_path):
    _checkpoint(tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    state["normalisation"] = {"mean": MEAN, "std": [0.5, 0.0, 1.0]}
    save_checkpoint(state, tmp_path / "s.pt")
    code, err = _sakd("export", str(tmp_path / "s.pt"), "-o", str(tmp_path / "s.ts"),
                      "--format", "torchscript", "--root", str(tmp_path))
    assert code == 2 and "positive stds" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_the_logged_model_serves_and_exports_images_in_0_1(tmp_path, monkeypatch):
    from sakd.models.normalise import normalisation_record
    from sakd.tracking_models import WEIGHTS_PATH

    uri = _store(tmp_path, monkeypatch)
    tracker = MLflowTracker(uri, artifact_root=tmp_path / "mlruns")
    torch.manual_seed(0)
    net = create_model("resnet8", 10).eval()
    x01 = torch.rand(4, *SHAPE)
    normalised = (x01 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with tracker.run("exp", "r", {}, {}) as run_id:
        tracker.log_model(net, "model", normalised, normalisation_record(MEAN, STD))
    source = f"runs:/{run_id}/model"
    local = mlflow.artifacts.download_artifacts(source, dst_path=str(tmp_path / "dl"))
    state = torch.load(Path(local) / WEIGHTS_PATH, weights_only=True)
    assert state["normalisation"] == {"mean": MEAN, "std": STD}
    with torch.no_grad():
        expected = net(normalised).numpy()
        served = mlflow.pytorch.load_model(source)(x01).numpy()  # our own, trusted store
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)
    done = run_export(source, "torchscript", tmp_path / "s.ts", uri)
    assert done.normalised_inside
    scripted = torch.jit.load(str(tmp_path / "s.ts"))
    np.testing.assert_allclose(scripted(x01).detach().numpy(), expected, atol=1e-4, rtol=0)


@pytest.mark.slow  # end to end: logs an MLflow model, then exports or serves it (ONNX, TorchScript)
def test_side_files_are_named_after_the_target_and_replaced_with_it(tmp_path, monkeypatch):
    """Past ONNX's 2 GB limit the weights go to `<name>.data`: written under the final name in
    the scratch folder, renamed beside the target first, and removed when a later export of
    the same target needs none. (A fake exporter stands in for a >2 GB network.)"""
    from sakd.deploy import export as ex

    def write_with_side(model, example, path):
        ex._write_torchscript(model, example, path)
        path.with_name(f"{path.name}.data").write_text(f"weights of {path.name}")

    fmt = "side-file-test"
    if fmt not in ex.EXPORTERS:
        ex.EXPORTERS.register(fmt)(lambda: ex.Exporter(write_with_side, ex._load_torchscript,
                                                       side_files=ex._onnx_side_files))
    model = create_model("resnet8", 10)
    out = tmp_path / "out" / "s.bin"
    ex.export_model(model, SHAPE, fmt, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.bin", "s.bin.data"]
    assert (out.parent / "s.bin.data").read_text() == "weights of s.bin"
    ex.export_model(model, SHAPE, "onnx", out)  # one self-contained file: the old side file goes
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.bin"]


def test_an_output_under_a_file_is_refused(tmp_path):
    _checkpoint(tmp_path / "s.pt")
    code, err = _sakd("export", str(tmp_path / "s.pt"), "-o", str(tmp_path / "s.pt" / "x.onnx"),
                      "--root", str(tmp_path))
    assert code == 2 and "is a file, not a folder" in _one_error_line(err)
