"""Export a network to a file other runtimes load, then prove the file computes the same logits.

Each format is an `Exporter`: `write(model, example, path)` and `load(path)` -> a function from a
float32 NCHW batch (numpy) to logits (numpy). `export_model` writes, reloads and compares on a
fixed batch of a different size than the one traced, so a batch dimension frozen by mistake fails.

All or nothing: the files of an export are written under their final names into a temporary folder
beside the target, loaded and verified from there, and only then renamed into place (side files
first, the main file last). A failed export leaves the previous files as they were.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sakd.atomic import temporary_dir
from sakd.models.normalise import Normalised
from sakd.registry import Registry

Runner = Callable[[np.ndarray], np.ndarray]
DEFAULT_ATOL = 1e-4  # float32 logits: kernels differ in summation order, not in math


class ExportMismatchError(RuntimeError):
    """The exported file's logits differ from PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class Exporter:
    write: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path], Runner]
    needs: str = ""  # the pip extra that provides it, for the error message
    side_files: Callable[[Path], list[Path]] = lambda path: []  # files it may write beside path


EXPORTERS: Registry[Exporter] = Registry("export format")


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    max_abs_diff: float
    atol: float
    batch: int
    normalised_inside: bool = False  # True: takes images in [0, 1] (sakd.models.normalise)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """One self-contained .onnx; weights go to `<name>.data` beside it only past ONNX's 2 GB
    limit for a single file (then the exporter names that file after `path`)."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (example,), input_names=["images"],
                                output_names=["logits"], dynamic_shapes=({0: batch},),
                                dynamo=True, verbose=False)
    program.save(str(path), external_data=False)  # external anyway when over the limit


def _onnx_side_files(path: Path) -> list[Path]:
    return [path.with_name(f"{path.name}.data")]


def _load_onnx(path: Path) -> Runner:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # deprecated in favour of torch.export, still loadable in C++
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(model, example).save(str(path))


def _load_torchscript(path: Path) -> Runner:
    module = torch.jit.load(str(path), map_location="cpu")
    return lambda x: module(torch.from_numpy(x)).detach().numpy()


def _write_pt2(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    program = torch.export.export(model, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(path))


def _load_pt2(path: Path) -> Runner:
    module = torch.export.load(str(path)).module()
    return lambda x: module(torch.from_numpy(x)).detach().numpy()


EXPORTERS.register("onnx")(lambda: Exporter(_write_onnx, _load_onnx, needs="deploy",
                                             side_files=_onnx_side_files))
EXPORTERS.register("torchscript")(lambda: Exporter(_write_torchscript, _load_torchscript))
EXPORTERS.register("pt2")(lambda: Exporter(_write_pt2, _load_pt2))


def export_model(
    model: nn.Module, input_shape: tuple[int, int, int], fmt: str, path: Path,
    atol: float = DEFAULT_ATOL, batch: int = 5, seed: int = 0,
) -> Exported:
    """Write `model` (eval mode, CPU) as `fmt` to `path` and verify it on a fixed random batch.

    Traced with a batch of 2 and verified with `batch` images, so the batch dimension must be
    dynamic. Raises ExportMismatchError naming the max abs difference when it exceeds `atol`;
    then, as on any failure, the files at `path` are left as they were."""
    exporter = EXPORTERS.create(fmt)
    model = _inference_mode(model)
    generator = torch.Generator().manual_seed(seed)
    trace = torch.randn(2, *input_shape, generator=generator)
    check = torch.randn(batch, *input_shape, generator=generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_dir(path.parent) as scratch:  # beside the target: renames stay atomic
        staged = scratch / path.name
        try:
            exporter.write(model, trace, staged)
            run = exporter.load(staged)
        except ImportError as err:
            hint = f' (pip install -e ".[{exporter.needs}]")' if exporter.needs else ""
            raise ImportError(f"{fmt} export needs {err.name}{hint}") from err
        diff = _verify(model, run, check, fmt, path, atol)
        _publish(staged, path, exporter.side_files(path))
    return Exported(path, fmt, diff, atol, batch, isinstance(model, Normalised))


def _publish(staged: Path, path: Path, side_files: list[Path]) -> None:
    """Rename the verified files into place: side files first, the main file last; a side
    file of the previous export that this one did not write is removed after."""
    written = {side: staged.parent / side.name for side in side_files}
    written = {side: tmp for side, tmp in written.items() if tmp.exists()}
    for side, tmp in written.items():
        os.replace(tmp, side)
    os.replace(staged, path)
    for side in side_files:
        if side not in written:
            side.unlink(missing_ok=True)


def _inference_mode(model: nn.Module) -> nn.Module:
    """CPU, eval mode (exported graphs are inference graphs: BN running stats, no dropout),
    NCHW."""
    return model.cpu().eval().to(memory_format=torch.contiguous_format)


def _verify(model: nn.Module, run: Runner, check: torch.Tensor, fmt: str, path: Path,
            atol: float) -> float:
    with torch.no_grad():
        expected = model(check).numpy()
    got = np.asarray(run(check.numpy()))
    if got.shape != expected.shape:
        raise ExportMismatchError(f"{path}: {fmt} gave logits of shape {got.shape} for a batch "
                                  f"of {len(check)}; PyTorch gives {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= atol:
        raise ExportMismatchError(f"{path}: {fmt} logits differ from PyTorch's by {diff:.3g} "
                                  f"(max abs) on a batch of {len(check)}; tolerance {atol:g}")
    return diff
