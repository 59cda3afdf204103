"""The compression table: what a distilled student buys against its teacher (size, speed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _millions(n: float) -> str:
    return f"{n / 1e6:.3f}" if n < 1e7 else f"{n / 1e6:.1f}"


def render_compression(data: Mapping[str, Any]) -> str:
    """Markdown section from the compression stage's JSON (architectures + rows)."""
    shape = "x".join(str(d) for d in data["input_shape"])
    lines = [
        "## Compression: what the student buys",
        "",
        f"Per image at the dataset's input size ({shape}); MACs count conv and linear layers; "
        f"weights are the float32 state dict; latency is the median per-image time of the ONNX "
        f"export in {data['runtime']} on {data['machine']}. Top-1 is the last epoch's test "
        f"accuracy; the distilled student is the one chosen by validation top-1 (the "
        f"registry's champion).",
        "",
        "| pair | role | network | params (M) | MACs (M) | weights (KiB) | "
        "latency b1 (ms) | latency b64 (ms/img) | test top-1 (%) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        c = data["architectures"][row["arch"]]
        lines.append(
            f"| {row['pair']} | {row['role']} | {row['arch']} | {_millions(c['params'])} | "
            f"{_millions(c['macs'])} | {c['weights_bytes'] / 1024:.0f} | "
            f"{c['latency_ms_b1']:.3f} | {c['latency_ms_b64']:.4f} | {row['test_top1']:.2f} |"
        )
    return "\n".join(lines) + "\n"
