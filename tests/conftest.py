"""Shared fixtures: a tiny params mapping on the embedded digits data."""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import os
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Tiny models on a shared 2-core machine: one thread avoids OpenMP spin contention (10x faster).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@event.listens_for(Engine, "connect")
def _sqlite_without_fsync(connection, _record) -> None:
    """The tests' SQLite stores (MLflow, Optuna) are scratch files: no fsync on every commit
    (each cost milliseconds, thousands per run). A crash of the process itself still leaves
    them consistent; only an OS crash could lose them. A file that is no database is left for
    the code under test to refuse (tests/test_export_safety.py)."""
    if isinstance(connection, sqlite3.Connection):
        with contextlib.suppress(sqlite3.DatabaseError):
            connection.execute("PRAGMA synchronous = OFF")


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (torch, MLflow, Optuna...: ~500k objects) lives to the end:
    frozen out of the garbage collector, so its full passes (pytest runs five at the end,
    ~0.5 s each otherwise) scan only what the tests themselves create."""
    gc.collect()
    gc.freeze()


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
    """The repository's params.yaml on the digits smoke test, as a plain mapping (a fresh copy
    per test): see `on_digits`."""
    return repo_params()


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


# The suite runs on digits, the smoke test (8x8, 10 classes: seconds per run), with the values
# the default study had before it moved to glyphs; glyphs has its own tests
# (tests/test_data_glyphs.py) and the default params.yaml is validated as it is
# (tests/test_config_hashes.py, tests/test_presets.py).
DIGITS_SMOKE = {
    "data": {"dataset": "digits"},
    "runs": {"pretrain": ["resnet20", "resnet8"], "pairs": [{"teacher": "resnet20",
                                                              "student": "resnet8"}],
             "distillers": ["kd", "at"], "strategies": ["adaptive", "always", "anti", "never"]},
    "pretrain": {"epochs": 30, "milestones": [18, 24], "lr": 0.05},
    "distill": {"epochs": 10, "milestones": [6, 8], "lr": 0.05, "beta2": {"at": 50.0}},
    "sensitivity": {"epochs": 10, "pruner": {"n_warmup_steps": 4}},
}


def on_digits(raw: dict) -> dict:
    """`raw` (a params mapping) switched to the digits smoke test, in place; returns it."""
    def merge(into: dict, over: dict) -> None:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "runs":
                merge(into[key], value)
            else:
                into[key] = copy.deepcopy(value)

    merge(raw, DIGITS_SMOKE)
    raw.get("data", {}).pop("glyphs", None)
    return raw


@functools.cache
def _parsed_yaml(text: str) -> object:
    return yaml.safe_load(text)


def read_yaml(path: Path) -> object:
    """A fresh copy of a YAML file's data: hundreds of tests start from params.yaml or a
    preset, and PyYAML's pure-Python parse costs ~13 ms where a deep copy costs ~0.1 ms.
    Cached by the text, so an edited file is parsed again."""
    return copy.deepcopy(_parsed_yaml(path.read_text(encoding="utf-8")))


def repo_params() -> dict:
    """The repository's params.yaml on the digits smoke test (a fresh mapping)."""
    return on_digits(read_yaml(REPO / "params.yaml"))
