"""Typed, validated configuration: the schema of params.yaml (pydantic v2 models).

`load_params(dict)` checks unknown keys, types, values and cross-references (a pair's teacher
must be pretrained, names must exist in their registries) and raises one `ConfigError` listing
every problem by its dotted key. Modules: errors (ConfigError), base (strict model and value
types), sections (data, runs, pretrain, distill), runtime (runtime, tracking), sensitivity
(the study).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, model_validator

from sakd.config.base import (
    PRUNER_NAMES,
    SAMPLER_NAMES,
    SCHEDULES_ALL,
    ConfigModel,
    replace,
    validate,
)
from sakd.config.errors import ConfigError
from sakd.config.runtime import RuntimeConfig, TrackingConfig
from sakd.config.sections import (
    DataConfig,
    DistillConfig,
    Pair,
    PretrainConfig,
    RunsConfig,
    Schedule,
    TauConfig,
)
from sakd.config.sensitivity import (
    FloatRange,
    GridConfig,
    PrunerConfig,
    SearchSpaceConfig,
    SensitivityConfig,
    TunePair,
)

REQUIRED_SECTIONS = ("data", "runs", "pretrain", "distill")


class Params(ConfigModel):
    """The whole params.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)

    @model_validator(mode="after")
    def _cross_sections(self) -> Params:
        self.sensitivity.check_against(self.runs, self.distill)
        return self


def load_params(data: Any, required: Sequence[str] = ()) -> Params:
    """Validate a params mapping; omitted sections take their (validated) defaults, except the
    `required` ones (a params file needs REQUIRED_SECTIONS). Raises one ConfigError naming
    every bad key."""
    if not isinstance(data, dict):
        raise ConfigError("", f"params must be a mapping of sections, got {type(data).__name__}")
    missing = [(k, f"missing required section (a params file needs {', '.join(required)})")
               for k in required if k not in data]
    try:
        # omitted sections are validated as written out empty: their defaults must pass too
        params = validate(Params, {**{k: {} for k in Params.model_fields}, **data})
    except ConfigError as err:
        raise ConfigError("", problems=missing + err.problems) from None
    if missing:
        raise ConfigError("", problems=missing)
    return params


def _plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _hashed(obj: Any) -> Any:
    """`_plain(obj)` less each config key that sits at its declared hash-neutral default."""
    data = _plain(obj)
    _drop_neutral(obj, data)
    return data


def _drop_neutral(obj: Any, data: Any) -> None:
    if isinstance(obj, BaseModel) and isinstance(data, dict):
        for key, neutral in getattr(obj, "hash_neutral_defaults", {}).items():
            if key in data and data[key] == neutral:
                del data[key]
        for name in type(obj).model_fields:
            if name in data:
                _drop_neutral(getattr(obj, name), data[name])
    elif isinstance(obj, list | tuple) and isinstance(data, list):
        for item, plain in zip(obj, data, strict=True):
            _drop_neutral(item, plain)
    elif isinstance(obj, dict) and isinstance(data, dict):
        for key, value in obj.items():
            _drop_neutral(value, data[key])


def config_hash(*parts: Any) -> str:
    """A short stable hash of config objects (for run tags and resume safety). A key added
    later is left out while at its `hash_neutral_defaults` value, so the hash of a config that
    does not use it is the one it had before the key existed."""
    blob = json.dumps([_hashed(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'distill.tau.tau0': 5.0, ...}: the form MLflow params take."""
    data = _plain(obj)
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def params_json_schema() -> dict[str, Any]:
    """The JSON schema of params.yaml for editors, with each distiller's declared options."""
    from sakd.distillers import list_distillers
    from sakd.distillers.options import options_model

    schema = Params.model_json_schema()
    options = schema["$defs"]["DistillConfig"]["properties"]["options"]
    options["properties"] = {name: options_model(name).model_json_schema()
                             for name in list_distillers()}
    options["additionalProperties"] = False
    return schema


__all__ = [
    "PRUNER_NAMES", "REQUIRED_SECTIONS", "SAMPLER_NAMES", "SCHEDULES_ALL", "ConfigError",
    "ConfigModel", "DataConfig", "DistillConfig", "FloatRange", "GridConfig", "Pair", "Params",
    "PretrainConfig", "PrunerConfig", "RunsConfig", "RuntimeConfig", "Schedule",
    "SearchSpaceConfig", "SensitivityConfig", "TauConfig", "TrackingConfig", "TunePair",
    "config_hash", "flatten", "load_params", "params_json_schema", "replace", "validate",
]
