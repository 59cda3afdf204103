"""Typed, validated configuration: the schema of params.yaml (pydantic v2 models).

`load_params(dict)` checks unknown keys, types, values and cross-references (a pair's teacher
must be pretrained, names must exist in their registries) and raises one `ConfigError` listing
every problem by its dotted key. The stage-neutral part (errors, value types, the data,
pretrain, runtime and tracking sections, a stage's view of the file) is sakd.schema, re-exported
here; this package adds what names the distill side's registries: names, sections (runs,
distill), sensitivity (the study).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from sakd.config.names import PRUNER_NAMES, SAMPLER_NAMES, tau_schedules
from sakd.config.sections import DistillConfig, RunsConfig, TauConfig
from sakd.config.sensitivity import (
    FloatRange,
    GridConfig,
    PrunerConfig,
    SearchSpaceConfig,
    SensitivityConfig,
    TunePair,
)
from sakd.schema import (
    REQUIRED_SECTIONS,
    ConfigError,
    ConfigModel,
    DataConfig,
    Pair,
    PretrainConfig,
    PretrainParams,
    RuntimeConfig,
    Schedule,
    TrackingConfig,
    config_hash,
    flatten,
    load_sections,
    replace,
    validate,
)


class Params(PretrainParams):
    """The whole params.yaml (what pretraining reads, plus the distill side)."""

    runs: RunsConfig = Field(default_factory=RunsConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)

    @model_validator(mode="after")
    def _cross_sections(self) -> Params:
        self.sensitivity.check_against(self.runs, self.distill)
        return self


def load_params(data: Any, required: Sequence[str] = ()) -> Params:
    """Validate a whole params mapping; omitted sections take their (validated) defaults,
    except the `required` ones (a params file needs REQUIRED_SECTIONS). Raises one ConfigError
    naming every bad key (an unknown section too)."""
    return load_sections(Params, data, required)


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
    "PRUNER_NAMES", "REQUIRED_SECTIONS", "SAMPLER_NAMES", "ConfigError",
    "ConfigModel", "DataConfig", "DistillConfig", "FloatRange", "GridConfig", "Pair", "Params",
    "PretrainConfig", "PretrainParams", "PrunerConfig", "RunsConfig", "RuntimeConfig", "Schedule",
    "SearchSpaceConfig", "SensitivityConfig", "TauConfig", "TrackingConfig", "TunePair",
    "config_hash", "flatten", "load_params", "load_sections", "params_json_schema", "replace",
    "tau_schedules", "validate",
]
