"""`compression` stage: what each network of the study costs to deploy, beside its accuracy.

Per architecture: parameters, MACs per image at the dataset's input size, float32 weights size,
and ONNX Runtime CPU latency per image at batch 1 and 64 (median). Per pair: the teacher, the
student alone (when pretrained) and the distilled student chosen by validation top-1 (the
registry's champion), each with its last-epoch test top-1. Writes metrics/compression/<dataset>.json
for the report.
"""

from __future__ import annotations

import io
import os
import platform
import tempfile
from pathlib import Path

import torch
from torch import nn

from pipeline.outputs import write_json
from pipeline.paths import Layout
from pipeline.register import champion, evaluated_results, pair_candidates
from pipeline.trained import load_trained
from sakd.config import Params
from sakd.data import get_dataset_info
from sakd.deploy import count_macs, count_params, export_model, onnx_latency_ms

BATCHES = (1, 64)
RUNS = {1: 200, 64: 30}  # timed batches per size; the median is reported


def machine_name() -> str:
    """CPU model (from /proc/cpuinfo where there is one), logical cores and OS."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({os.cpu_count()} logical cores, {platform.system()})"


def architecture_cost(model: nn.Module, shape: tuple[int, int, int], threads: int) -> dict:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    cost = {"params": count_params(model), "macs": count_macs(model, shape),
            "weights_bytes": buffer.getbuffer().nbytes}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_model(model, shape, "onnx", Path(tmp) / "model.onnx").path
        for batch in BATCHES:
            cost[f"latency_ms_b{batch}"] = onnx_latency_ms(onnx, shape, batch, runs=RUNS[batch],
                                                          threads=threads)
    return cost


def run_compression(params: Params, root: Path) -> Path:
    dataset = params.data.dataset
    layout = Layout(root, dataset)
    results = evaluated_results(layout)
    info = get_dataset_info(dataset)
    shape = (info.channels, info.input_size, info.input_size)
    rows, nets = [], {}
    for pair in params.runs.pairs:
        distilled = [c for c in pair_candidates(params, layout, results, pair.teacher,
                                                pair.student)
                     if not c.alone]  # the student alone has its own row below
        roles = [("teacher", pair.teacher, layout.pretrained(pair.teacher), "model")]
        if pair.student in results["teachers"]:
            roles.append(("student alone", pair.student, layout.pretrained(pair.student), "model"))
        best = champion(distilled) if distilled else None  # None: only `never` was run
        if best is not None:
            roles.append((f"student, {best.distiller}/{best.strategy} seed {best.seed}",
                          pair.student, layout.student(best.key), "student"))
        for role, arch, path, module in roles:
            top1 = (results["teachers"][arch]["top1"] if module == "model" else best.test_top1)
            rows.append({"pair": f"{pair.teacher}-{pair.student}", "role": role, "arch": arch,
                         "test_top1": top1})
            if arch not in nets:
                stage = f"pretrain@{arch}" if module == "model" else "distill"
                nets[arch] = load_trained(path, module, stage, arch, info.num_classes)[0]
    threads = params.runtime.threads or 1
    costs = {arch: architecture_cost(net, shape, threads) for arch, net in nets.items()}
    import onnxruntime

    out = root / "metrics" / "compression" / f"{dataset}.json"
    write_json(out, {"dataset": dataset, "input_shape": list(shape), "machine": machine_name(),
                     "runtime": f"ONNX Runtime {onnxruntime.__version__}, CPU, {threads} "
                                f"thread{'s' if threads > 1 else ''}",
                     "architectures": costs, "rows": rows})
    return out
