"""From study to deployable student on digits: MLflow models and lineage, the registry step,
verified export, the compression table, and serving the registered champion over HTTP.

One module-scoped project (resnet8 teacher and student, kd, two strategies, 2 epochs) is trained
once with a real MLflow tracker on a temporary sqlite store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from pipeline.export import run_export
from pipeline.lineage import folder_digest
from pipeline.paths import Layout, run_key
from pipeline.register import ALIAS, registered_name, run_register
from pipeline.trained import load_trained
from sakd.data import build_loaders
from tests.studies import fetched_project, tiny_study, trained_study

NAME = registered_name("digits", "resnet8", "resnet8")


@pytest.fixture(scope="module")
def project(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("deploy")
    params = fetched_project(root, tiny_study("resnet8", "resnet8", ["kd"],
                                              ["adaptive", "always"]))
    uri = trained_study(root, params)
    mlflow.set_tracking_uri(uri)
    return root, params, uri


def _test_batch(root: Path, n: int = 16) -> torch.Tensor:
    _, test, _ = build_loaders("digits", root / "data", batch_size=n, device="cpu")
    return next(iter(test))[0][:n].contiguous()


def _checkpoints(root: Path) -> list[tuple[Path, str]]:
    layout = Layout(root, "digits")
    return [(layout.pretrained("resnet8"), "model"),
            *((layout.student(run_key("resnet8", "resnet8", "kd", s, 0)), "student")
              for s in ("adaptive", "always"))]


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
def test_every_trained_network_is_an_mlflow_model_with_the_checkpoint_logits(project):
    """The MLflow model takes images in [0, 1]: the normalisation recorded at training time
    (the loaders' mean/std) is inside it."""
    root, _, _ = project
    x = _test_batch(root)
    _, _, data = build_loaders("digits", root / "data", batch_size=4, device="cpu")
    for path, module in _checkpoints(root):
        net, state = load_trained(path, module, "test", "resnet8")
        assert state["normalisation"] == {"mean": list(data.mean), "std": list(data.std)}
        mean, std = (torch.tensor(state["normalisation"][k]).view(1, 3, 1, 1)
                     for k in ("mean", "std"))
        loaded = mlflow.pytorch.load_model(f"runs:/{state['run_id']}/model")
        with torch.no_grad():
            torch.testing.assert_close(loaded(x * std + mean), net.eval()(x), rtol=0, atol=1e-5)
        info = mlflow.models.get_model_info(f"runs:/{state['run_id']}/model")
        assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 3, 8, 8)


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
def test_runs_record_dataset_digest_split_sizes_and_source(project):
    root, _, uri = project
    client = MlflowClient(uri)
    digest = folder_digest(root / "data" / "digits")
    for path, module in _checkpoints(root):
        run = client.get_run(load_trained(path, module, "test", "resnet8")[1]["run_id"])
        (entry,) = run.inputs.dataset_inputs
        assert (entry.dataset.name, entry.dataset.digest) == ("digits", digest)
        tags = {t.key: t.value for t in entry.tags}
        # digits' 1,347 training images are split into train + val; the test split stays 450
        train, val = int(tags["train_size"]), int(tags["val_size"])
        assert (train + val, tags["test_size"]) == (1347, "450") and val > 0
        assert run.data.tags["mlflow.source.name"].startswith("sakd ")
        assert "mlflow.source.git.commit" in run.data.tags


def test_digest_changes_with_the_data(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"12345")
    before = folder_digest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"12346")
    assert folder_digest(tmp_path) != before


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
def test_register_picks_the_best_val_run_tags_it_and_never_duplicates(project):
    root, params, uri = project
    layout = Layout(root, "digits")
    keys = [run_key("resnet8", "resnet8", "kd", s, 0) for s in ("adaptive", "always")]
    val = {k: load_trained(layout.student(k), "student", "t", "resnet8")[1]["history"][-1][
        "val/top1"] for k in keys}
    best, other = sorted(keys, key=lambda k: -val[k])
    evaluated = json.loads(layout.evaluate_metrics().read_text())
    evaluated["students"][other]["top1"] = 100.0  # test must not decide
    layout.evaluate_metrics().write_text(json.dumps(evaluated))
    client = MlflowClient(uri)
    for _ in range(2):
        out = run_register(params, root, uri)
    versions = client.search_model_versions(f"name='{NAME}'")
    assert len(versions) == 1
    chosen = client.get_model_version_by_alias(NAME, ALIAS)
    expected = best if val[best] > val[other] else keys[0]  # a tie goes to params order
    assert chosen.tags["run_key"] == expected
    assert chosen.tags["distiller"] == "kd" and chosen.tags["seed"] == "0"
    assert float(chosen.tags["test_top1"]) == pytest.approx(
        evaluated["students"][chosen.tags["run_key"]]["top1"], abs=0.01)
    assert json.loads(out.read_text())[NAME]["version"] == int(chosen.version)


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_the_champion_is_verified_and_batch_dynamic(project, tmp_path, fmt):
    _, _, uri = project
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    out = run_export(f"models:/{NAME}@{ALIAS}", fmt, tmp_path / f"student.{fmt}", uri)
    assert out.path.is_file() and out.max_abs_diff <= out.atol
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape[0] == "batch"


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
def test_export_from_a_checkpoint_and_a_mismatch_names_the_difference(project, tmp_path):
    from pipeline.errors import UserError
    from sakd.deploy.export import EXPORTERS, Exporter, _load_torchscript, _write_torchscript

    root, _, uri = project
    ckpt = _checkpoints(root)[1][0]
    done = run_export(str(ckpt), "torchscript", tmp_path / "s.ts", uri)
    assert done.path.is_file()
    if "noisy-test" not in EXPORTERS:
        def noisy(path):
            run = _load_torchscript(path)
            return lambda x: run(x) + 0.5
        EXPORTERS.register("noisy-test")(lambda: Exporter(_write_torchscript, noisy))
    with pytest.raises(UserError, match=r"differ from PyTorch's by 0\.5"):
        run_export(str(ckpt), "noisy-test", tmp_path / "bad.ts", uri)
    assert not (tmp_path / "bad.ts").exists()  # nothing unverified left behind


@pytest.mark.slow  # end to end: the module's project trains, logs, registers and exports models
def test_compression_table_in_the_report(project):
    from pipeline.compression import run_compression
    from pipeline.report import run_report
    from sakd.deploy import count_params
    from sakd.models import create_model

    root, params, _ = project
    data = json.loads(run_compression(params, root).read_text())
    cost = data["architectures"]["resnet8"]
    assert cost["params"] == count_params(create_model("resnet8", 10))
    assert cost["macs"] > cost["params"]  # convs reuse weights over the 8x8 maps
    assert cost["latency_ms_b64"] > 0 and cost["latency_ms_b1"] > 0
    assert [r["role"].split(",")[0] for r in data["rows"]] == ["teacher", "student alone",
                                                             "student"]
    out = root / "reports" / "results.md"
    run_report(root, "digits", out, root / "plots" / "report" / "digits")
    text = out.read_text()
    assert "## Compression" in text and data["machine"] in text
    assert "| resnet8-resnet8 | teacher | resnet8 | 0.078 |" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:  # a 4xx answer: its JSON body says why
        return err.code, json.loads(err.read())


def _raw_pixels(root: Path, n: int) -> torch.Tensor:
    """Test images as a user has them: scaled to [0, 1], not normalised."""
    _, _, data = build_loaders("digits", root / "data", batch_size=4, device="cpu")
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (data.mean, data.std))
    return (_test_batch(root, n) * std + mean).clamp(0, 1).contiguous()


@pytest.mark.slow
def test_readme_serving_example_answers_raw_pixels_and_refuses_bad_inputs_with_a_reason(project):
    """The README's `mlflow models serve` command against the registry alias, on loopback:
    images scaled to [0, 1] give PyTorch's logits; NaN, 0-255 pixels and a wrong shape get a
    400 whose message says why without echoing the request (the shape one is MLflow's own)."""
    root, _, uri = project
    port = _free_port()
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@{ALIAS}",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(cmd, env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}/invocations"
    x = _raw_pixels(root, 4)
    nan, pixels = x.clone(), (x * 255).round()
    nan[1, 2, 3, 4] = float("nan")
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not answer /ping in 240 s"
                time.sleep(1)
        status, body = _post(url, {"inputs": x.numpy().tolist()})
        answers = {name: _post(url, {"inputs": bad.numpy().tolist()})
                   for name, bad in (("nan", nan), ("pixels", pixels), ("shape", x[:, :2]))}
    finally:
        os.killpg(server.pid, 15)  # the server and its workers: the group this test started
        server.wait(timeout=30)
    model = mlflow.pytorch.load_model(f"models:/{NAME}@{ALIAS}")
    got = np.asarray(body["predictions"])
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5, rtol=0)
    assert status == 200 and got.argmax(1).tolist() == model(x).argmax(1).tolist()
    assert [answers[k][0] for k in answers] == [400, 400, 400]
    assert answers["nan"][1]["message"].startswith(
        "inputs hold 1 non-finite values (NaN or Inf), the first at index (1, 2, 3, 4)")
    assert answers["pixels"][1]["message"].startswith("inputs range over [0, 255], outside [0, 1]")
    assert all(len(answers[k][1]["message"]) < 300 for k in ("nan", "pixels"))
    assert "does not match expected shape (-1, 3, 8, 8)" in answers["shape"][1]["message"]


def test_macs_count_conv_and_linear_layers_per_image():
    from torch import nn

    from sakd.deploy import count_macs

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Flatten(), nn.Linear(256, 10))
    conv1 = 8 * 8 * 4 * 3 * 3 * 3  # output elements x (in/groups) x kh x kw
    conv2 = 8 * 8 * 4 * 2 * 3 * 3
    assert count_macs(net, (3, 8, 8)) == conv1 + conv2 + 256 * 10
    assert net.training  # restored after the count


def test_served_inputs_are_refused_with_the_reason_alone():
    """NaN/Inf and values outside [0, 1] are refused by name; MLflow's scoring server rewrites
    a model error's message to start with the whole request, which InputRejected ignores."""
    from sakd.tracking.served import InputRejected, check_images

    x = np.zeros((2, 3, 4, 4), np.float32)
    check_images(x)  # black images are fine
    x[1, 0, 2, 3] = np.inf
    with pytest.raises(InputRejected, match=r"1 non-finite values .* index \(1, 0, 2, 3\)") as err:
        check_images(x)
    err.value.message = f"Failed to predict data '{x}'. Error: {err.value.message}"
    assert err.value.message.startswith("inputs hold 1 non-finite")
    assert err.value.get_http_status_code() == 400
    with pytest.raises(InputRejected, match=r"range over \[-0\.5, 0\.25\]") as err:
        check_images(np.array([-0.5, 0.25], np.float32).reshape(1, 1, 1, 2))
    assert "divide by 255" not in str(err.value)  # normalised twice, not 8-bit pixels
