"""The `sakd` command line: stages are listed, bad input exits 2 with the key named."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("fetch", "pretrain", "distill", "evaluate", "report", "tune", "bench",
                    "preset", "check"):
        assert command in result.output


@pytest.mark.parametrize(("section", "key", "value", "commands"), [
    ("pretrain", "lr", -0.05, (["check"], ["pretrain", "--arch", "resnet8"], ["evaluate"])),
    ("data", "val_fraction", 2.0, (["check"], ["fetch"], ["pretrain", "--arch", "resnet8"])),
])  # each command validates the sections it reads (`fetch` reads data only)
def test_bad_params_exit_2_naming_the_key_and_write_nothing(tmp_path, default_params, section,
                                                            key, value, commands):
    default_params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in commands:
        result = runner.invoke(app, [*args, "--root", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert f"{section}.{key}" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unknown_model_lists_valid_names(tmp_path, default_params):
    default_params["runs"]["pretrain"].append("resnet9")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params))
    result = runner.invoke(app, ["check", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "resnet9" in result.output and "resnet20" in result.output


@pytest.mark.slow  # end to end: fetches the dataset, then runs the distill command
def test_missing_teacher_checkpoint_says_which_stage_to_run(tmp_path, default_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params))
    runner.invoke(app, ["fetch", "--root", str(tmp_path)])
    result = runner.invoke(app, ["distill", "--teacher", "resnet20", "--student", "resnet8",
                                 "--distiller", "kd", "--strategy", "always",
                                 "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "dvc repro pretrain@resnet20" in result.output


def test_check_schema_prints_a_json_schema_editors_can_use(tmp_path):
    import json

    result = runner.invoke(app, ["check", "--schema", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert {"data", "runs", "pretrain", "distill", "sensitivity"} <= set(schema["properties"])
    assert not list(tmp_path.iterdir())  # prints only; no params file needed, nothing written


def test_cli_names_outside_the_registries_exit_2_before_any_path_is_built(tmp_path,
                                                                         default_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params))
    escape = tmp_path.parent / "x.pt"
    escape.write_bytes(b"not a checkpoint")  # what `../x` would load if it became a path
    base = {"--teacher": "resnet20", "--student": "resnet8", "--distiller": "kd",
            "--strategy": "always"}
    for option, bad in (("--teacher", "../x"), ("--student", "../../y"),
                        ("--distiller", "../kd"), ("--strategy", "always/../never")):
        args = [a for kv in {**base, option: bad}.items() for a in kv]
        result = runner.invoke(app, ["distill", *args, "--root", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert bad in result.output and "valid:" in result.output
        assert "Traceback" not in result.output
    for args in (["pretrain", "--arch", "../x"], ["fetch", "../digits"]):
        result = runner.invoke(app, [*args, "--root", str(tmp_path)])
        assert result.exit_code == 2 and "valid:" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
