"""`sakd bench`: the JSON a user scripts against, fair interleaving, memory probe, CLI errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from benchmarks import BenchConfig, run_bench
from benchmarks.memory import PeakMemory
from benchmarks.timing import interleaved_step_times, rotations
from pipeline.cli import app

TINY = dict(teacher="resnet14", student="resnet8", distiller="at", batch_size=8, input_size=8,
            num_classes=5, steps=2, warmup=1, device="cpu", epoch_images=16)
STRATEGY_KEYS = {"median_step_s", "images_per_s", "peak_mem_mb", "step_mem_mb", "min_step_s",
                 "p90_step_s", "steps", "epoch_s", "epoch_images_per_s", "epoch_median_s"}


@pytest.fixture(scope="module")
def tiny_result():
    return run_bench(BenchConfig(**TINY))


def test_result_has_one_object_per_strategy_with_sane_figures(tiny_result):
    doc = json.loads(json.dumps(tiny_result.to_dict()))  # plain JSON: no NaN, no tensors
    for name in ("never", "always", "adaptive"):
        r = doc[name]
        assert set(r) == STRATEGY_KEYS
        assert r["steps"] == 2
        assert 0 < r["min_step_s"] <= r["median_step_s"] <= r["p90_step_s"]
        assert r["images_per_s"] == pytest.approx(8 / r["median_step_s"])
        assert r["peak_mem_mb"] > 10  # the process's resident memory, interpreter included
        assert r["epoch_median_s"] > 0 and r["epoch_s"] > 0
        assert r["epoch_images_per_s"] == pytest.approx(16 / r["epoch_s"])
    assert doc["ratio_adaptive_always"] == pytest.approx(
        doc["adaptive"]["median_step_s"] / doc["always"]["median_step_s"]
    )
    assert doc["epoch_images"] == 16
    assert doc["config"]["teacher"] == "resnet14" and doc["config"]["strategies"] == [
        "never", "always", "adaptive"]
    assert doc["machine"]["torch_threads"] >= 1 and len(doc["machine"]["load_avg"]) == 3


def test_bench_restores_the_thread_count():
    before = torch.get_num_threads()
    run_bench(BenchConfig(**{**TINY, "threads": before + 1, "strategies": ("never",),
                             "epoch_images": 0}))
    assert torch.get_num_threads() == before


def test_ratio_is_absent_without_both_strategies():
    result = run_bench(BenchConfig(**{**TINY, "strategies": ("always",), "epoch_images": 0}))
    doc = result.to_dict()
    assert doc["ratio_adaptive_always"] is None and doc["epoch_images"] == 0
    assert doc["always"]["epoch_s"] is None


def test_rotations_give_every_strategy_every_position_equally():
    orders = list(rotations(["a", "b", "c"], 6))
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)
    for position in range(3):
        firsts = [o[position] for o in orders]
        assert all(firsts.count(n) == 2 for n in "abc")


def test_steps_are_interleaved_and_warmup_is_not_timed():
    calls: list[str] = []
    fns = {n: (lambda n=n: calls.append(n)) for n in ("x", "y")}
    times, peaks = interleaved_step_times(fns, 3, 2, lambda: None, PeakMemory(torch.device("cpu")))
    assert calls[:4] == ["x", "x", "y", "y"]  # warm-up
    assert calls[4:] == ["x", "y", "y", "x", "x", "y"]  # rotated rounds
    assert {n: len(t) for n, t in times.items()} == {"x": 3, "y": 3}
    assert all(p[0] > 0 for p in peaks.values())


def test_peak_memory_sees_what_the_step_allocates():
    probe = PeakMemory(torch.device("cpu"))
    probe.start()
    block = torch.ones(16 * 1024 * 1024)  # 64 MiB, touched
    peak, added = probe.stop()
    del block
    if probe.kind == "rss_peak":
        assert added >= 48
    assert peak >= 64


@pytest.mark.parametrize(
    ("change", "message"),
    [({"batch_size": 1}, "batch_size"), ({"steps": 0}, "steps"),
     ({"strategies": ("sometimes",)}, "valid: adaptive"), ({"epoch_images": -1}, "epoch")],
)
def test_config_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**{**TINY, **change})


def _cli_args(**over) -> list[str]:
    opts = {"--teacher": "resnet14", "--student": "resnet8", "--distiller": "kd",
            "--batch-size": "4", "--input-size": "8", "--num-classes": "5", "--steps": "1",
            "--warmup": "0", "--device": "cpu", "--epoch-images": "0", **over}
    return ["bench", *[part for kv in opts.items() for part in kv]]


def test_cli_prints_a_table_and_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    result = CliRunner().invoke(app, [*_cli_args(), "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "adaptive / always =" in result.output and "threads 1" in result.output
    doc = json.loads(out.read_text())
    assert {"never", "always", "adaptive", "ratio_adaptive_always"} <= set(doc)
    assert doc["config"]["channels_last"] is True  # the measured defaults (docs/bench.md)
    assert doc["config"]["fold_batchnorm"] is True and doc["config"]["compile"] is False
    assert doc["machine"]["torch_threads"] == 1
    assert math.isfinite(doc["ratio_adaptive_always"])


@pytest.mark.parametrize(
    ("over", "message"),
    [({"--teacher": "resnet9"}, "resnet8"), ({"--strategies": "always,often"}, "often"),
     ({"--batch-size": "1"}, "batch_size")],
)
def test_cli_reports_bad_input_in_one_line(over, message):
    result = CliRunner().invoke(app, _cli_args(**over))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_the_bench_runtime_is_the_runtime_section_of_the_schema():
    """One source: the keys, checks and help of `sakd bench`'s runtime options are params.yaml's
    runtime section; its defaults differ from the section's only where TIMING_RUNTIME says."""
    from sakd.schema import TIMING_KEYS, TIMING_RUNTIME, RuntimeConfig

    assert set(TIMING_KEYS) <= set(RuntimeConfig.model_fields)
    differs = {k for k in RuntimeConfig.model_fields
               if getattr(TIMING_RUNTIME, k) != getattr(RuntimeConfig(), k)}
    assert differs == {"channels_last", "autocast"}
    cfg = BenchConfig(**{k: v for k, v in TINY.items() if k != "device"})
    assert cfg.runtime() == {k: getattr(TIMING_RUNTIME, k) for k in TIMING_KEYS}
    with pytest.raises(ValueError, match="threads"):  # the section's own bounds
        BenchConfig(**{**TINY, "threads": -1})
    usage = CliRunner().invoke(app, ["bench", "--help"], terminal_width=200).output
    for key in TIMING_KEYS:
        assert f"--{key.replace('_', '-')}" in usage
        assert RuntimeConfig.model_fields[key].description.split()[0] in usage
