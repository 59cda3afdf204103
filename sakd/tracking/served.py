"""The MLflow model flavour sakd logs: MLflow's pytorch flavour, served through a check of the
input contract, so a request a network would answer with garbage gets a 400 and a reason.

The contract: float32 images scaled to [0, 1], shape (N, C, H, W) as in the signature (the
dataset's normalisation is inside the model). `mlflow models serve` and `mlflow.pyfunc` load the
model through `_load_pyfunc` below (the MLmodel's `python_function` loader); the `pytorch` flavour
is MLflow's own, so `mlflow.pytorch.load_model` gives the bare network as before. The check runs
after MLflow's signature enforcement (shape, dtype), and refuses what the signature cannot
express: NaN/Inf, and values outside [0, 1] (0-255 pixels, or images normalised twice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

INPUT_CONTRACT = ("float32 images scaled to [0, 1] (divide 8-bit pixels by 255), shape "
                  "(N, C, H, W); the training normalisation is inside the model")
# a network logged without its normalisation (none recorded) takes what its loaders gave it
NORMALISED_CONTRACT = ("float32 images normalised as in training (this model holds no "
                       "normalisation), shape (N, C, H, W)")
UNIT_RANGE_KEY = "inputs_in_unit_range"  # in the python_function flavour's config
ROUNDING = 1e-4  # [0, 1] images converted from another scale may stray by float rounding


class InputRejected(MlflowException):
    """A 400 whose message is the reason alone. MLflow's scoring server rewrites the message of
    any MlflowException a model raises to `Failed to predict data '<the whole request>'. Error:
    ...`, which buries the reason under the request; this class keeps its message as given."""

    def __init__(self, reason: str) -> None:
        self._reason = reason
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:  # the server's rewrite (see the class docstring)
        pass


def check_images(x: np.ndarray, unit_range: bool = True) -> None:
    """InputRejected naming what is wrong with a batch of images: non-finite values, and with
    `unit_range` (the normalisation inside) values outside [0, 1]."""
    contract = INPUT_CONTRACT if unit_range else NORMALISED_CONTRACT
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputRejected(f"inputs hold {int(bad.sum())} non-finite values (NaN or Inf), the "
                            f"first at index {first}: send {contract}")
    if not unit_range:
        return
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if low < -ROUNDING or high > 1.0 + ROUNDING:
        hint = " (0-255 pixels? divide by 255)" if high > 1.0 and low >= -ROUNDING else ""
        raise InputRejected(f"inputs range over [{low:g}, {high:g}], outside [0, 1]{hint}: "
                            f"send {INPUT_CONTRACT}")


class CheckedImages:
    """The pyfunc model: the contract checked, then the network's logits (float32, (N, K))."""

    def __init__(self, network: Any, unit_range: bool) -> None:
        self.network = network
        self.unit_range = unit_range

    def get_raw_model(self) -> Any:
        return self.network

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        if not isinstance(data, np.ndarray):
            raise InputRejected(f"expected an array of images, got a {type(data).__name__}")
        check_images(data, self.unit_range)
        with torch.no_grad():
            logits = self.network(torch.from_numpy(np.ascontiguousarray(data, np.float32)))
        return logits.detach().cpu().numpy()


def save_model(pytorch_model: Any, path: str, mlflow_model: Any = None, unit_range: bool = True,
               **kwargs: Any) -> None:
    """MLflow's pytorch flavour, with this module as the `python_function` loader (called by
    `mlflow.models.Model.log(flavor=this module)`); `unit_range`: the model takes [0, 1]."""
    import mlflow.pytorch
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.pyfunc import FLAVOR_NAME

    mlflow.pytorch.save_model(pytorch_model, path, mlflow_model=mlflow_model, **kwargs)
    flavour = mlflow_model.flavors[FLAVOR_NAME]
    flavour["loader_module"] = __name__
    flavour.setdefault("config", {})[UNIT_RANGE_KEY] = bool(unit_range)
    mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))


def _load_pyfunc(path: str, model_config: dict | None = None) -> CheckedImages:
    """`path` is the model's data folder: the network is the pytorch flavour beside it."""
    import mlflow.pytorch

    unit_range = bool((model_config or {}).get(UNIT_RANGE_KEY, True))
    return CheckedImages(mlflow.pytorch.load_model(str(Path(path).parent)), unit_range)
