"""Shared fixtures: a tiny params mapping on the embedded digits data."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import yaml

# Tiny models on a shared 2-core machine: one thread avoids OpenMP spin contention (10x faster).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _keep_mlflow_uri():
    """mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI for the whole process: without
    this, a test that opened a store in a temp folder would send later tests' subprocesses
    (torchrun ranks, DVC stages) to it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def default_params() -> dict:
    """The repository's params.yaml as a plain mapping (a fresh copy per test)."""
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.fixture
def tiny_params(default_params) -> dict:
    """params.yaml shrunk to seconds: 2 epochs, one pair, the cheapest models."""
    p = default_params
    p["runs"] = {
        "pretrain": ["resnet14", "resnet8"],
        "pairs": [{"teacher": "resnet14", "student": "resnet8"}],
        "distillers": ["kd", "at"],
        "strategies": ["adaptive", "always", "anti", "random", "never"],
        "seeds": [0],
    }
    for section in ("pretrain", "distill"):
        p[section].update(epochs=2, milestones=[1])
    p["distill"]["decision_grid"] = 8
    p["runtime"]["device"] = "cpu"
    return p


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is as fast, and immune to oversubscription when
    other processes share the CPU. Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
