"""The part of params.yaml's schema that names no distiller or spot: errors, value types, the
data, pretrain, runtime and tracking sections, and what a stage validates (stages).

sakd.config is the whole file and re-exports all of this; `sakd fetch` and `sakd pretrain`
import only this package, so editing a distiller or a spot module re-runs neither (dvc.yaml's
deps, tests/test_dvc_deps.py).
"""

from sakd.schema.base import ConfigModel, replace, validate
from sakd.schema.errors import ConfigError
from sakd.schema.hashing import config_hash, flatten
from sakd.schema.runtime import TIMING_KEYS, TIMING_RUNTIME, RuntimeConfig, TrackingConfig
from sakd.schema.sections import DataConfig, Pair, PretrainConfig, Schedule
from sakd.schema.stages import (
    REQUIRED_SECTIONS,
    SECTIONS,
    DataParams,
    PretrainParams,
    PretrainRuns,
    StageParams,
    load_sections,
)

__all__ = [
    "REQUIRED_SECTIONS", "SECTIONS", "TIMING_KEYS", "TIMING_RUNTIME", "ConfigError",
    "ConfigModel", "DataConfig", "DataParams", "Pair", "PretrainConfig", "PretrainParams",
    "PretrainRuns", "RuntimeConfig", "Schedule", "StageParams", "TrackingConfig", "config_hash",
    "flatten", "load_sections", "replace", "validate",
]
