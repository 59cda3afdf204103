"""Read params.yaml, pick the device, seed everything, and connect the tracker."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Hashable
from pathlib import Path
from typing import TypeVar

import torch
import yaml

from pipeline.errors import UserError
from pipeline.paths import dvc_experiment_tags, store_root
from sakd.schema import (
    REQUIRED_SECTIONS,
    ConfigError,
    ConfigModel,
    RuntimeConfig,
    StageParams,
    load_sections,
)
from sakd.schema.errors import join_key
from sakd.tracking import MLflowTracker, Tracker, resolve_tracking_uri


class _UniqueKeys:
    """A SafeLoader's mixin that refuses a repeated mapping key (YAML keeps the last one
    silently)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        self._paths = _mapping_paths(node, "")
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # SafeLoader itself refuses it, with its own message
            if key in seen:
                where = join_key(getattr(self, "_paths", {}).get(id(node), ""), str(key))
                raise ConfigError(where, f"duplicate key (line {line}; first at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """Pure Python: its syntax errors quote the offending line."""


# libyaml's parser where PyYAML has it (8x faster); a file it refuses is read again by the
# pure-Python loader above, for that loader's message
_FastUniqueKeyLoader = type("_FastUniqueKeyLoader",
                            (_UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)), {})


def _load_unique(text: str) -> object:
    try:
        return yaml.load(text, Loader=_FastUniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError:
        return yaml.load(text, Loader=_UniqueKeyLoader)


def _mapping_paths(node: yaml.Node | None, path: str) -> dict[int, str]:
    """id(mapping node) -> its dotted key, so a duplicate is named like any other problem."""
    paths: dict[int, str] = {}
    if isinstance(node, yaml.MappingNode):
        paths[id(node)] = path
        for key_node, value in node.value:
            paths.update(_mapping_paths(value, join_key(path, str(key_node.value))))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            paths.update(_mapping_paths(item, join_key(path, f"[{i}]")))
    return paths


P = TypeVar("P", bound=ConfigModel)


def read_params(path: Path, sections: type[P]) -> P:
    """Load a params file and validate the `sections` a stage reads (sakd.config.Params: the
    whole file); every problem names its key (ConfigError).

    The file must hold a mapping with the sections data, runs, pretrain and distill; duplicate
    keys and an empty file are refused."""
    if not path.is_file():
        raise UserError(f"params file {path} not found (run from the project root, or --params)")
    try:
        data = _load_unique(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text: {err}") from None
    if data is None:
        raise UserError(f"{path} is empty: it needs the sections {', '.join(REQUIRED_SECTIONS)}")
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of sections ({', '.join(REQUIRED_SECTIONS)}, "
                        f"...), got a {type(data).__name__}")
    return load_sections(sections, data, required=REQUIRED_SECTIONS)


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


def tracking_uri(configured: str | None, root: Path) -> str:
    """The MLflow store of the repository DVC came from (also from a DVC temp workspace, where
    `root` is the copy): every stage that reads or writes runs must agree on it."""
    return resolve_tracking_uri(configured, store_root(root))


def make_tracker(params: StageParams, root: Path) -> Tracker:
    """MLflow in the original repository (also from a DVC temp workspace), every run tagged
    with the DVC experiment it belongs to."""
    return MLflowTracker(tracking_uri(params.tracking.uri, root),
                         artifact_root=store_root(root) / "mlruns",
                         default_tags=dvc_experiment_tags(),
                         system_metrics=params.tracking.system_metrics,
                         timeout_s=params.tracking.timeout_s)


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


def open_store_early(tracker: Tracker) -> None:
    """Open the tracking store before any training, so a broken or locked one fails now. Only
    rank 0 of a torchrun launch records runs (and process group or not, $RANK says which)."""
    if os.environ.get("RANK", "0") == "0":
        tracker.open_store()
