"""The `sakd` deployment commands: `compression` and `register` (DVC stages), `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli_common import ParamsOpt, RootOpt, load_context, user_errors_exit_2


@user_errors_exit_2
def register(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Register each pair's best student (by val top-1) in MLflow with alias `champion`."""
    from pipeline.register import run_register
    from pipeline.settings import tracking_uri
    from sakd.config import Params

    p, root_dir = load_context(params, root, Params)
    out = run_register(p, root_dir, tracking_uri(p.tracking.uri, root_dir))
    typer.echo(f"wrote {out}")


@user_errors_exit_2
def compression(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Params, MACs, weights size, ONNX Runtime latency and test top-1 of every network."""
    from pipeline.compression import run_compression
    from sakd.config import Params

    p, root_dir = load_context(params, root, Params)
    typer.echo(f"wrote {run_compression(p, root_dir)}")


@user_errors_exit_2
def export(
    source: Annotated[str, typer.Argument(
        help="a checkpoint .pt, or an MLflow model URI (runs:/<id>/model, "
             "models:/sakd-<dataset>-<teacher>-<student>@champion)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx | torchscript | pt2")] = "onnx",
    atol: Annotated[float | None, typer.Option(
        "--atol", help="max abs logit difference allowed in the check (default 1e-4)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
) -> None:
    """Export a trained network and verify the file against PyTorch on a fixed batch."""
    from pipeline.export import run_export
    from pipeline.paths import find_root
    from pipeline.settings import tracking_uri
    from sakd.config import Params

    root_dir = (root or find_root()).resolve()
    configured = None
    if (params if params.is_absolute() else root_dir / params).is_file():  # as load_context
        configured = load_context(params, root_dir, Params)[0].tracking.uri
    done = run_export(source, fmt, output, tracking_uri(configured, root_dir), atol)
    inputs = ("float32 NCHW images scaled to [0, 1] (the training normalisation is inside)"
              if done.normalised_inside else "float32 NCHW images normalised as in training "
              "(the source records no normalisation)")
    typer.echo(f"wrote {done.path} ({done.format}); verified on a batch of {done.batch}: max abs "
               f"logit difference {done.max_abs_diff:.2e} <= {done.atol:g}; inputs: {inputs}")
