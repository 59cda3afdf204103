"""Tiny end-to-end studies for the tests that train for real: one pair on digits, 2 epochs on
the CPU, seed 0, written to a project folder with the data fetched (and, for the tests that
need finished cells, trained into an MLflow store)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.distill import run_distill
from pipeline.evaluate import run_evaluate
from pipeline.fetch import run_fetch
from pipeline.pretrain import run_pretrain
from sakd.config import Params, load_params
from sakd.tracking import MLflowTracker
from tests.conftest import repo_params


def tiny_study(teacher: str, student: str, distillers: list[str], strategies: list[str],
               decision_grid: int = 0) -> dict:
    """repo_params() cut to one pair (both pretrained), seed 0, 2 epochs with one decay, on the
    CPU: the smallest study that still runs every stage."""
    raw = repo_params()
    raw["runs"] = {"pretrain": list(dict.fromkeys([teacher, student])),
                   "pairs": [{"teacher": teacher, "student": student}],
                   "distillers": list(distillers), "strategies": list(strategies), "seeds": [0]}
    for section in ("pretrain", "distill"):
        raw[section].update(epochs=2, milestones=[1])
    raw["distill"]["decision_grid"] = decision_grid
    raw["runtime"]["device"] = "cpu"
    return raw


def fetched_project(root: Path, raw: dict) -> Params:
    """`raw` as root/params.yaml (root must exist), validated, with its dataset fetched."""
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(raw)
    run_fetch(params, root)
    return params


def trained_study(root: Path, params: Params) -> str:
    """Every teacher and every cell of `params.runs` trained into root/mlflow.db (artifacts
    under root/mlruns), then evaluated; returns the store's URI."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MLflowTracker(uri, artifact_root=root / "mlruns")
    for arch in params.runs.pretrain:
        run_pretrain(params, arch, root, tracker=tracker, progress=False)
    for pair in params.runs.pairs:
        for distiller in params.runs.distillers:
            for strategy in params.runs.strategies:
                for seed in params.runs.seeds:
                    run_distill(params, root, pair.teacher, pair.student, distiller, strategy,
                                seed, tracker=tracker, progress=False)
    run_evaluate(params, root)
    return uri
