"""Load a trained network for `sakd export` and `sakd register` without running code from the
file: weights read with `torch.load(weights_only=True)` into the zoo architecture recorded beside
them. A pickled model (or a torch.export archive, whose loader falls back to unpickling) is never
loaded: it could run anything."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from torch import nn

from pipeline.errors import UserError
from sakd.data import get_dataset_info
from sakd.models import create_model
from sakd.models.normalise import Normalised, recorded_normalisation
from sakd.tracking.relocation import readable_source
from sakd.tracking_errors import redact, store_errors
from sakd.tracking_models import WEIGHTS_PATH
from sakd.train.checkpoint import CheckpointError, load_checkpoint, load_module_state

Shape = tuple[int, int, int]
MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
CHECKPOINT_MODULES = ("student", "model")  # distill checkpoints hold "student", pretrain "model"


def is_mlflow_uri(source: str) -> bool:
    return source.startswith(MLFLOW_SCHEMES)


def load_from_checkpoint(path: Path) -> tuple[nn.Module, Shape]:
    """The trained network of a pretrain or distill checkpoint (or of an MLflow model's weights
    file), and its input shape (C, H, W). With the normalisation recorded at training time it
    takes images scaled to [0, 1] (sakd.models.normalise); older checkpoints record none."""
    state = load_checkpoint(path, required=("arch", "num_classes", "modules"))
    module = next((m for m in CHECKPOINT_MODULES if m in state["modules"]), None)
    if module is None:
        raise UserError(f"checkpoint {path} holds modules {sorted(state['modules'])}, none of "
                        f"{list(CHECKPOINT_MODULES)}: not a pretrain or distill checkpoint")
    try:  # recorded values of the wrong type or range
        model = create_model(state["arch"], state["num_classes"])
        shape = _input_shape(path, state)
        recorded = recorded_normalisation(state, shape[0])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    load_module_state(model, state["modules"][module], path, module)
    return (model if recorded is None else Normalised(model, *recorded)), shape


def _input_shape(path: Path, state: dict) -> Shape:
    shape = state.get("input_shape")
    if shape is None and "dataset" in state:
        info = get_dataset_info(state["dataset"])
        shape = (info.channels, info.input_size, info.input_size)
    if not isinstance(shape, list | tuple) or len(shape) != 3:
        raise CheckpointError(f"checkpoint {path} records no input shape (C, H, W) or dataset")
    return tuple(int(d) for d in shape)


def load_from_mlflow(uri: str, tracking_uri: str) -> tuple[nn.Module, Shape]:
    """An MLflow model (runs:/<id>/model, models:/<name>@<alias>) logged by sakd, from the plain
    weights file it carries; a model without one is refused, never unpickled."""
    with tempfile.TemporaryDirectory(prefix="sakd-model-") as tmp:
        folder = _download(uri, tracking_uri, Path(tmp))
        weights = folder / WEIGHTS_PATH
        if not (folder / "MLmodel").is_file():
            raise UserError(f"MLflow model {uri} has no files in the store: its artifacts "
                            f"(under mlruns/) were deleted or moved. Restore them, or retrain")
        if not weights.is_file():
            raise UserError(
                f"MLflow model {uri} carries no {WEIGHTS_PATH} (plain weights), so it was not "
                f"logged by this version of sakd: sakd never unpickles a model, since that can "
                f"run any code. Export the run's checkpoint file instead, or retrain it")
        try:
            return load_from_checkpoint(weights)
        except (CheckpointError, UserError) as err:
            detail = str(err).replace(str(weights), f"{uri}/{WEIGHTS_PATH}")
            raise UserError(f"MLflow model {uri}: {detail}") from None


def _download(uri: str, tracking_uri: str, folder: Path) -> Path:
    """The model's files (copied, not loaded) into `folder`; a missing model or artifacts
    folder, or a broken store, is a one-line error."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with store_errors(tracking_uri), _quiet():
            source = readable_source(uri, tracking_uri)  # also from a copied project's store
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(folder), tracking_uri=tracking_uri)
    except (MlflowException, OSError) as err:
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"cannot read MLflow model {uri} from {redact(tracking_uri)}: {detail}. "
                        f"Check the URI and that the store's artifacts (mlruns/) are "
                        f"there") from None
    return Path(local)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bar (a few small files) and no "No artifacts found" log line: the error
    that follows says it in one line."""
    logger = logging.getLogger("mlflow.store.artifact.artifact_repo")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with mock.patch.dict(os.environ, {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}):
            yield
    finally:
        logger.setLevel(level)
