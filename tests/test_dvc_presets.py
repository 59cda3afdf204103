"""A preset queued through DVC: `sakd preset NAME --dvc-args | xargs dvc exp run --queue`
must produce exactly the params file `sakd preset NAME` would write."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.errors import UserError
from pipeline.preset import apply_preset, list_presets
from pipeline.preset_args import dvc_set_args, hydra_value, preset_dvc_args
from sakd.config import load_params
from tests.conftest import REPO

apply_overrides = pytest.importorskip("dvc.utils.hydra").apply_overrides


# imagenet.yaml empties lr_by_arch (default: two entries): DVC's YAML writer turns an emptied
# commented mapping into invalid YAML, so that preset is refused with a clear message.
NOT_QUEUEABLE = {"imagenet"}


@pytest.mark.parametrize(
    "preset", [p.name for p in list_presets(REPO) if p.name not in NOT_QUEUEABLE])
def test_dvc_overrides_reproduce_the_preset_switch(preset, tmp_path):
    source = REPO / "configs" / f"{preset}.yaml"
    switched, queued = tmp_path / "switched.yaml", tmp_path / "queued.yaml"
    for path in (switched, queued):
        shutil.copy(REPO / "params.yaml", path)
    apply_preset(source, switched)
    args = shlex.split(" ".join(preset_dvc_args(source, queued)))  # as xargs hands them over
    assert args and all(flag == "-S" for flag in args[::2])
    apply_overrides(queued, args[1::2])  # what `dvc exp run -S` does to params.yaml
    # the same validated params (an emptied mapping is deleted: the schema's default is empty)
    assert load_params(yaml.safe_load(queued.read_text())) == load_params(
        yaml.safe_load(switched.read_text()))


def test_overrides_add_change_and_delete_keys():
    args = dvc_set_args({"a": {"x": 1, "new": [1, "b c"]}, "b": None},
                        {"a": {"x": 2, "old": True}, "b": None})
    assert args == ["-S", "a.x=1", "-S", shlex.quote("+a.new=[1,'b c']"), "-S", "'~a.old'"]
    assert hydra_value({"teacher": "it's", "s": "resnet8", "b": "null"}) == (
        "{teacher:'it\\'s',s:resnet8,b:'null'}")


@pytest.mark.parametrize("preset", sorted(NOT_QUEUEABLE))
def test_a_preset_dvc_cannot_write_is_refused_clearly(preset):
    with pytest.raises(UserError, match="use `sakd preset` and `dvc exp run`"):
        preset_dvc_args(REPO / "configs" / f"{preset}.yaml", REPO / "params.yaml")


def test_a_bad_preset_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"runs": {"distillers": ["nope"]}}))
    with pytest.raises(Exception, match="distillers"):
        preset_dvc_args(bad, Path(REPO / "params.yaml"))
