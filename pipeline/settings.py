"""Read params.yaml, pick the device, seed everything, and connect the tracker."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import torch
import yaml

from pipeline.errors import UserError
from sakd.config import Params, RuntimeConfig, load_params
from sakd.tracking import MLflowTracker, Tracker, resolve_tracking_uri


def read_params(path: Path) -> Params:
    """Load and validate a params file; every problem names the key (ConfigError)."""
    if not path.is_file():
        raise UserError(f"params file {path} not found (run from the project root, or --params)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    return load_params(data)


def resolve_device(runtime: RuntimeConfig) -> torch.device:
    """The torch device to train on (and the CPU thread count, which goes with it)."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if runtime.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(runtime.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"runtime.device is {runtime.device!r} but CUDA is not available here")
    return device


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python and torch; on CPU the run is then bit-reproducible."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def make_tracker(params: Params, root: Path) -> Tracker:
    uri = resolve_tracking_uri(params.tracking.uri, root)
    return MLflowTracker(uri, artifact_root=root / "mlruns")


def git_commit(root: Path) -> str:
    """The checked-out commit (plus '-dirty' with local changes), or 'unknown'."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("GIT_COMMIT", "unknown")


def data_options(params: Params) -> dict:
    """The dataset's own options from params.data (what fetch_dataset/build_loaders take)."""
    data = params.data
    if data.dataset == "imagenet":
        return {"path": data.imagenet_path}
    if data.dataset == "digits":
        return {"test_fraction": data.test_fraction, "split_seed": data.split_seed}
    return {}
