"""`sakd export`: a trained network (checkpoint file or MLflow model URI) to a verified file.

Bad arguments (a tolerance that is not a finite number >= 0, an output that is a folder or the
source itself) are refused before anything is loaded or written."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.errors import UserError
from pipeline.saved_models import (
    MLFLOW_SCHEMES,
    is_mlflow_uri,
    load_from_checkpoint,
    load_from_mlflow,
)
from sakd.deploy import EXPORTERS, Exported, ExportMismatchError, export_model

__all__ = ["is_mlflow_uri", "run_export"]


def check_arguments(source: str, fmt: str, output: Path, atol: float | None) -> None:
    """UserError (or UnknownNameError listing the formats) naming the problem, before any work."""
    EXPORTERS.get(fmt)
    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise UserError(f"--atol must be a finite number >= 0 (a max abs logit difference), "
                        f"got {atol}")
    if output.is_dir():
        raise UserError(f"--output {output} is a folder: give the path of the file to write "
                        f"(e.g. {output / 'student.onnx'})")
    folder = next((p for p in output.absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UserError(f"--output {output}: {folder} is a file, not a folder")
    if not is_mlflow_uri(source) and Path(source).resolve() == output.resolve():
        raise UserError(f"--output {output} is the source itself: writing there would destroy "
                        f"{source}; choose another file")


def run_export(source: str, fmt: str, output: Path, tracking_uri: str,
               atol: float | None = None) -> Exported:
    """Load SOURCE, write `output` in `fmt`, verify it against PyTorch (or fail naming the gap).

    All or nothing: on any failure the files at `output` are left as they were."""
    check_arguments(source, fmt, output, atol)
    if is_mlflow_uri(source):
        model, shape = load_from_mlflow(source, tracking_uri)
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"{source} is neither a checkpoint file nor an MLflow model URI "
                            f"({', '.join(MLFLOW_SCHEMES)}...)")
        model, shape = load_from_checkpoint(path)
    kwargs = {} if atol is None else {"atol": atol}
    try:
        return export_model(model, shape, fmt, output, **kwargs)
    except ExportMismatchError as err:
        raise UserError(f"export not verified: {err}") from None
