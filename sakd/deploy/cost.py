"""What a network costs to deploy: parameters, multiply-accumulates per image, and the CPU
latency of its ONNX export in ONNX Runtime. No profiler dependency: MACs come from forward hooks.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs for one image: each output element of a conv is (in/groups)*kh*kw MACs, of a
    linear layer in_features MACs. BatchNorm, activations and pooling are not counted (the
    usual convention of the papers' FLOPs columns)."""
    per_image = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    return per_image * module.in_features


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of conv and linear layers for one image of `input_shape` (C, H, W)."""
    total = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return total


def onnx_latency_ms(
    onnx_path: Path, input_shape: tuple[int, int, int], batch: int, runs: int = 50,
    warmup: int = 5, threads: int = 1,
) -> float:
    """Median wall time per image (ms) of ONNX Runtime on the CPU over `runs` timed batches."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *input_shape), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / batch
