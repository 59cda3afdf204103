"""`sakd bench` fast-path switches (--capture, --fused-optimizer) and --concurrent runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks import BenchConfig
from benchmarks.concurrent import summarise_concurrent
from benchmarks.step import build_step, synthetic_loader
from pipeline.cli import app
from sakd.train.capture import CapturedStep

TINY = dict(teacher="resnet14", student="resnet8", distiller="at", batch_size=4, input_size=8,
            num_classes=5, steps=2, warmup=1, device="cpu", epoch_images=0)


def _args(**over) -> list[str]:
    opts = {"--teacher": "resnet14", "--student": "resnet8", "--distiller": "kd",
            "--batch-size": "4", "--input-size": "8", "--num-classes": "5", "--steps": "2",
            "--warmup": "1", "--device": "cpu", "--epoch-images": "0", "--threads": "1", **over}
    return ["bench", *[part for kv in opts.items() for part in kv]]


def test_switches_build_the_captured_step_and_foreach_optimisers():
    cfg = BenchConfig(**TINY, capture=True, fused_optimizer=True)
    import torch

    loader = synthetic_loader(cfg, torch.device("cpu"), 8)
    step = build_step(cfg, "adaptive", torch.device("cpu"), loader)
    assert isinstance(step, CapturedStep)
    assert all(o.defaults["foreach"] for o in step.optimizers.values())
    plain = build_step(BenchConfig(**TINY), "adaptive", torch.device("cpu"), loader)
    assert not isinstance(plain, CapturedStep)


def test_capture_and_compile_are_exclusive_and_concurrent_positive():
    with pytest.raises(ValueError, match="capture"):
        BenchConfig(**TINY, capture=True, compile=True)
    with pytest.raises(ValueError, match="concurrent"):
        BenchConfig(**TINY, concurrent=0)
    result = CliRunner().invoke(app, _args(**{"--concurrent": "0"}))
    assert result.exit_code == 2 and "concurrent" in result.output


@pytest.mark.slow  # two spawned processes import torch
def test_concurrent_runs_report_aggregate_and_per_run_images_per_s(tmp_path):
    out = tmp_path / "k2.json"
    result = CliRunner().invoke(app, [*_args(**{"--strategies": "never,adaptive",
                                                "--concurrent": "2"}), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "aggregate img/s" in result.output
    doc = json.loads(out.read_text())
    assert doc["concurrent"] == 2 and len(doc["runs"]) == 2
    for name in ("never", "adaptive"):
        per_run = doc[name]["per_run_images_per_s"]
        assert len(per_run) == 2 and all(v > 0 for v in per_run)
        assert doc[name]["images_per_s"] == pytest.approx(sum(per_run))
    assert all(run["config"]["concurrent"] == 1 for run in doc["runs"])  # each is one run


@pytest.mark.slow
def test_a_failing_concurrent_run_is_one_line_error():
    result = CliRunner().invoke(app, _args(**{"--teacher": "resnet9", "--concurrent": "2"}))
    assert result.exit_code == 2
    assert "concurrent run" in result.output and "resnet9" in result.output
    assert "Traceback" not in result.output


def test_summary_sums_the_runs():
    run = {"adaptive": {"images_per_s": 10.0, "median_step_s": 0.1, "epoch_images_per_s": None},
           "config": {"strategies": ["adaptive"]}, "machine": {"device": "cpu"}}
    doc = summarise_concurrent(BenchConfig(**TINY, strategies=("adaptive",)), [run, run, run])
    assert doc["adaptive"]["images_per_s"] == 30.0 and doc["concurrent"] == 3
    assert doc["adaptive"]["epoch_images_per_s"] is None
