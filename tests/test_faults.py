"""OS faults (read-only folder, full disk): one line naming the path and the cause, a non-zero
exit without a traceback, and no partial file."""

from __future__ import annotations

import errno

import pytest
import yaml
from typer.testing import CliRunner

import sakd.atomic
from pipeline.cli import app
from pipeline.fetch import run_fetch
from pipeline.paths import Layout
from sakd.atomic import WriteError, atomic_torch_save, atomic_write_text
from sakd.config import load_params

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from tests.conftest import repo_params

    raw = repo_params()
    raw["runtime"]["device"] = "cpu"
    raw["pretrain"].update(epochs=1, milestones=[])
    root = tmp_path_factory.mktemp("faults")
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    run_fetch(load_params(raw), root)
    return root


def _full_disk(tmp, data):
    with tmp.open("wb") as f:
        f.write(bytes(data)[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def _read_only(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_write_text(path, "previous")
    monkeypatch.setattr(sakd.atomic, "_write_bytes", _full_disk)
    with pytest.raises(WriteError, match=rf"cannot write {path}: No space left on device "
                                         r"\(ENOSPC\)"):
        atomic_torch_save({"w": [1.0] * 1000}, path)
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def _pretrain(root, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    return runner.invoke(app, ["pretrain", "--arch", "resnet8", "-q", "--root", str(root)])


@pytest.mark.slow  # end to end: the pretrain command on a fetched project, its disk failing
def test_a_full_disk_while_saving_exits_cleanly_leaving_no_partial_checkpoint(project,
                                                                            monkeypatch):
    monkeypatch.setattr(sakd.atomic, "_write_bytes", _full_disk)
    result = _pretrain(project, monkeypatch)
    assert result.exit_code == 2, result.output
    ckpt = project / "models" / "teachers" / "digits" / "resnet8.pt"
    state = Layout(project, "digits").resume(ckpt)  # per-epoch state: published at the end
    assert f"cannot write {state}: No space left on device (ENOSPC)" in result.output
    assert "Traceback" not in result.output and "inline_container" not in result.output
    assert list(state.parent.iterdir()) == [] and not ckpt.exists()


@pytest.mark.slow  # end to end: the pretrain command on a fetched project, its disk failing
def test_a_read_only_models_folder_fails_before_training(project, monkeypatch):
    monkeypatch.setattr(sakd.atomic.tempfile, "mkstemp", _read_only)  # root ignores chmod
    result = _pretrain(project, monkeypatch)
    assert result.exit_code == 2, result.output
    ckpt = project / "models" / "teachers" / "digits" / "resnet8.pt"
    state = Layout(project, "digits").resume(ckpt)
    assert f"cannot write {state}: Permission denied (EACCES)" in result.output
    assert "epoch 1/1" not in result.output  # no epoch was spent first
    assert "Traceback" not in result.output
    assert not ckpt.exists()
