"""sakd.atomic: a write either lands whole or leaves the previous file (and no temp file) behind."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from sakd.atomic import (
    TEMP_PREFIX,
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_temporaries,
    temporary_dir,
)


def test_a_failing_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "previous\n")

    def half_then_fail(tmp):
        tmp.write_text("half a fil", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_interrupts_also_clean_up(tmp_path):
    path = tmp_path / "a.pt"

    def interrupted(tmp):
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert list(tmp_path.iterdir()) == []


def test_helpers_write_what_they_say(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "ü\n")  # creates the folder; UTF-8
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [1.5]})
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "d.pt")
    assert (tmp_path / "sub" / "a.txt").read_bytes() == "ü\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    assert text == json.dumps({"a": [1.5], "b": 1}, indent=2) + "\n"
    loaded = torch.load(tmp_path / "d.pt", weights_only=True)
    assert torch.equal(loaded["w"], torch.arange(3))


def test_mode_sets_the_permissions_of_the_new_file(tmp_path):
    path = tmp_path / "params.yaml"
    atomic_write_text(path, "a: 1\n", mode=0o640)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_remove_temporaries_sweeps_only_temporary_entries(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}x.pt-123.tmp").write_bytes(b"half")
    (tmp_path / f"{TEMP_PREFIX}scratch").mkdir()
    (tmp_path / "keep.pt").write_bytes(b"whole")
    with temporary_dir(tmp_path) as scratch:
        assert scratch.name.startswith(TEMP_PREFIX)
    assert not scratch.exists()
    remove_temporaries(tmp_path)
    remove_temporaries(tmp_path / "missing")  # no folder: nothing to do
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]
