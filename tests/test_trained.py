"""Checkpoints from earlier stages: another run's file is refused, naming the file and why."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.trained import load_trained
from sakd.models import create_model
from sakd.train.checkpoint import CheckpointError, save_checkpoint

runner = CliRunner()


def _finished(path, arch: str, num_classes: int, weights_of: str | None = None) -> None:
    """A finished pretrain checkpoint recording `arch`, holding the weights of `weights_of`."""
    model = create_model(weights_of or arch, num_classes)
    save_checkpoint({"arch": arch, "num_classes": num_classes, "epoch": 1, "total_epochs": 1,
                     "modules": {"model": model.state_dict()}, "history": []}, path)


def test_a_checkpoint_of_another_architecture_or_class_count_is_refused(tmp_path):
    path = tmp_path / "resnet8.pt"
    _finished(path, "resnet20", 10)
    with pytest.raises(CheckpointError, match=r"resnet8\.pt records arch 'resnet20' "
                                              r"\(expected 'resnet8'\)"):
        load_trained(path, "model", "pretrain@resnet8", "resnet8", 10)
    _finished(path, "resnet8", 100)
    with pytest.raises(CheckpointError, match=r"num_classes 100 \(expected 10\)"):
        load_trained(path, "model", "pretrain@resnet8", "resnet8", 10)
    _finished(path, "resnet8", 10)
    model, _ = load_trained(path, "model", "pretrain@resnet8", "resnet8", 10)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in create_model("resnet8", 10).parameters())


def test_weights_that_disagree_with_the_recorded_architecture_name_the_file(tmp_path):
    path = tmp_path / "resnet8.pt"
    _finished(path, "resnet8", 10, weights_of="resnet14")  # right label, wrong weights
    with pytest.raises(CheckpointError, match=r"resnet8\.pt: the weights of 'model' do not fit"):
        load_trained(path, "model", "pretrain@resnet8", "resnet8", 10)


@pytest.mark.slow  # end to end: the distill command against a pretrained project
def test_distill_refuses_a_swapped_teacher_checkpoint(tmp_path, tiny_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    assert runner.invoke(app, ["fetch", "--root", str(tmp_path)]).exit_code == 0
    teacher = tmp_path / "models" / "teachers" / "digits" / "resnet14.pt"
    teacher.parent.mkdir(parents=True)
    _finished(teacher, "resnet8", 10)  # resnet8's checkpoint under resnet14's name
    result = runner.invoke(app, ["distill", "--teacher", "resnet14", "--student", "resnet8",
                                 "--distiller", "kd", "--strategy", "always", "--quiet",
                                 "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert str(teacher) in result.output and "arch 'resnet8' (expected 'resnet14')" in result.output
    assert not (tmp_path / "models" / "students").exists()
