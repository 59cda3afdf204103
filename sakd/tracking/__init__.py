"""Experiment tracking behind a small interface: MLflow for real runs, in-memory for tests.

The training code only calls `Tracker` methods; which backend records them is the caller's
choice. Metric keys follow DESIGN.md (`train/loss`, `val/top1`, `route/p_distill/<spot>`, ...).
"""

from sakd.tracking.base import (
    CURRENT_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_NAME,
    PARAMS_HASH_TAG,
    RUN_PATH_TAG,
    SUPERSEDED_TAG,
    DatasetRecord,
    StoppedEarly,
    Tracker,
    mark_current,
    resolve_tracking_uri,
)
from sakd.tracking.memory import MemoryTracker
from sakd.tracking.mlflow_tracker import MLflowTracker

__all__ = [
    "CURRENT_TAG", "EXPERIMENT_KIND_TAG", "MODEL_NAME", "PARAMS_HASH_TAG", "RUN_PATH_TAG",
    "SUPERSEDED_TAG", "DatasetRecord", "MLflowTracker", "MemoryTracker", "StoppedEarly",
    "Tracker", "mark_current", "resolve_tracking_uri",
]
