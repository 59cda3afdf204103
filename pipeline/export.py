"""`sakd export`: a trained network (checkpoint file or MLflow model URI) to a verified file."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pipeline.errors import UserError
from sakd.data import get_dataset_info
from sakd.deploy import Exported, ExportMismatchError, export_model
from sakd.models import create_model
from sakd.train.checkpoint import load_checkpoint

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
CHECKPOINT_MODULES = ("student", "model")  # distill checkpoints hold "student", pretrain "model"


def is_mlflow_uri(source: str) -> bool:
    return source.startswith(MLFLOW_SCHEMES)


def load_from_checkpoint(path: Path) -> tuple[nn.Module, tuple[int, int, int]]:
    """The trained network of a pretrain or distill checkpoint, and its input shape (C, H, W)."""
    state = load_checkpoint(path, required=("arch", "num_classes", "modules", "dataset"))
    module = next((m for m in CHECKPOINT_MODULES if m in state["modules"]), None)
    if module is None:
        raise UserError(f"checkpoint {path} holds modules {sorted(state['modules'])}, none of "
                        f"{list(CHECKPOINT_MODULES)}: not a pretrain or distill checkpoint")
    model = create_model(state["arch"], state["num_classes"])
    model.load_state_dict(state["modules"][module])
    info = get_dataset_info(state["dataset"])
    return model, (info.channels, info.input_size, info.input_size)


def load_from_mlflow(uri: str, tracking_uri: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """An MLflow pytorch model (runs:/..., models:/name@alias) and its signature's input shape."""
    import mlflow
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.pytorch.load_model(uri, map_location="cpu")
        signature = mlflow.models.get_model_info(uri).signature
    except (MlflowException, OSError) as err:
        raise UserError(f"cannot load MLflow model {uri} from {tracking_uri}: {err}") from None
    shape = signature.inputs.inputs[0].shape if signature else None
    if not shape or len(shape) != 4:
        raise UserError(f"MLflow model {uri} has no NCHW tensor signature to export against")
    return model, tuple(int(d) for d in shape[1:])


def run_export(source: str, fmt: str, output: Path, tracking_uri: str,
               atol: float | None = None) -> Exported:
    """Load SOURCE, write `output` in `fmt`, verify it against PyTorch (or fail naming the gap)."""
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
