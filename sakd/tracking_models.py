"""A trained network as an MLflow model that can be loaded without running code from the store.

Served (`mlflow models serve`, `mlflow.pyfunc`) through sakd.tracking.served, which checks the
input contract (images scaled to [0, 1], finite) and answers a bad request with a 400 and why.

MLflow's pytorch flavour keeps the network as a torch.export program (or a pickle): that copy is
what `mlflow models serve` and `mlflow.pytorch.load_model` use, and loading either may run code
(a pickle by design; torch.export's loader falls back to unpickling). Beside it, as an extra file
of the same model, goes WEIGHTS_FILE: a checkpoint of plain tensors and containers (registry
name, class count, input shape, weights) that `sakd export` and `sakd register` read with
`torch.load(weights_only=True)` and load into a network built from the zoo.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sakd.models.normalise import NORMALISATION_KEY, Normalised

WEIGHTS_FILE = "sakd-weights.pt"
WEIGHTS_PATH = f"extra_files/{WEIGHTS_FILE}"  # where MLflow keeps it inside the model


def network_state(model: nn.Module, input_shape: Sequence[int], num_classes: int,
                  normalisation: Mapping[str, list[float]] | None = None) -> dict[str, Any] | None:
    """A zoo network as a checkpoint (`arch`, `num_classes`, `input_shape`, `modules.model`,
    and the training `normalisation` when given); None for a network that records no zoo name
    (`model.arch`) to be rebuilt from."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, str):
        return None
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state = {"arch": arch, "num_classes": int(num_classes),
             "input_shape": [int(d) for d in input_shape], "modules": {"model": weights}}
    if normalisation is not None:
        state[NORMALISATION_KEY] = {k: list(v) for k, v in normalisation.items()}
    return state


def _served(net: nn.Module, x: torch.Tensor,
            normalisation: Mapping[str, list[float]] | None) -> tuple[nn.Module, torch.Tensor]:
    """What MLflow serves, and its input example: with the training normalisation inside,
    the network takes images in [0, 1] (the example, normalised by the loader, is mapped back)."""
    if normalisation is None:
        return net, x
    served = Normalised(net, normalisation["mean"], normalisation["std"]).eval()
    return served, (x * served.std + served.mean).clamp(0, 1).contiguous()  # rounding


def log_pytorch_model(model: nn.Module, name: str, example: torch.Tensor,
                      normalisation: Mapping[str, list[float]] | None = None) -> str:
    """Log `model` (a CPU copy in eval mode, with the training `normalisation` inside when
    given) as the MLflow model `name` of the active run, with a signature, an input example and
    WEIGHTS_FILE; returns the model URI."""
    from mlflow.models import Model, infer_signature

    from sakd.tracking import served as flavour

    net = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
    x = example[:2].detach().cpu().float().contiguous()
    served, x = _served(net, x, normalisation)
    with torch.no_grad():
        logits = served(x)
    with tempfile.TemporaryDirectory(prefix="sakd-model-") as tmp:
        state = network_state(net, x.shape[1:], logits.shape[1], normalisation)
        extra = None
        if state is not None:
            torch.save(state, Path(tmp) / WEIGHTS_FILE)
            extra = [str(Path(tmp) / WEIGHTS_FILE)]
        info = Model.log(
            artifact_path=None, name=name, flavor=flavour, pytorch_model=served,
            input_example=x.numpy(), extra_files=extra,
            signature=infer_signature(x.numpy(), logits.numpy()),
            unit_range=normalisation is not None,
            metadata={"inputs": flavour.INPUT_CONTRACT if normalisation is not None
                      else flavour.NORMALISED_CONTRACT,
                      "outputs": "float32 logits, shape (N, classes)"},
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    return info.model_uri
