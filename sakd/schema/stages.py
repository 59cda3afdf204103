"""What a stage validates of params.yaml: the sections it reads, nothing else.

A stage that validated the whole file would import the code behind every name in it (checking
`runs.distillers` imports the distillers), so editing a distiller would re-run pretraining.
`DataParams` is what every stage reads, `StageParams` what every training stage reads,
`PretrainParams` what pretraining reads; sakd.config.Params, the whole file, extends it.
`load_sections` validates one of them and passes over the file's other sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import ConfigDict, Field, field_validator

from sakd.schema.base import ConfigModel, ModelName, non_empty, unique, validate
from sakd.schema.errors import ConfigError
from sakd.schema.runtime import RuntimeConfig, TrackingConfig
from sakd.schema.sections import DataConfig, PretrainConfig

P = TypeVar("P", bound=ConfigModel)

SECTIONS = ("data", "runs", "pretrain", "distill", "runtime", "tracking", "sensitivity")
"""The sections of params.yaml (sakd.config.Params declares each; a test keeps them equal)."""

REQUIRED_SECTIONS = ("data", "runs", "pretrain", "distill")
"""What a params file must hold, whichever of them a stage reads."""


class DataParams(ConfigModel):
    """The section every stage reads: its data (what `sakd fetch` and `sakd report` read)."""

    data: DataConfig = Field(default_factory=DataConfig)


class StageParams(DataParams):
    """The sections every training stage reads: its data, where tensors run, where runs are
    recorded (tracking is no DVC param: it says where a run is kept, not what it computes)."""

    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


class PretrainRuns(ConfigModel):
    """`runs` as pretraining reads it: the architectures to train (dvc.yaml's foreach list).
    The rest of the section names distillers and strategies: the distilling stages check it."""

    model_config = ConfigDict(extra="ignore")

    pretrain: list[ModelName] = Field(default_factory=list)

    _pretrain = field_validator("pretrain")(
        lambda v: unique("architectures", non_empty("architecture to pretrain")(v)))


class PretrainParams(StageParams):
    """What `sakd pretrain` validates: the supervised schedule and the list it trains from."""

    runs: PretrainRuns = Field(default_factory=PretrainRuns)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)


def load_sections(model: type[P], data: Any, required: Sequence[str] = ()) -> P:
    """Validate the sections `model` declares from a params mapping; the file's other sections
    are passed over (another stage's to check), an unknown one is refused. Omitted sections
    take their (validated) defaults; a `required` one must be there. Raises one ConfigError
    naming every bad key."""
    if not isinstance(data, dict):
        raise ConfigError("", f"params must be a mapping of sections, got {type(data).__name__}")
    sections = model.model_fields
    missing = [(k, f"missing required section (a params file needs {', '.join(required)})")
               for k in required if k not in data]
    given = {k: v for k, v in data.items() if k in sections or k not in SECTIONS}
    try:
        # omitted sections are validated as written out empty: their defaults must pass too
        params = validate(model, {**{k: {} for k in sections}, **given})
    except ConfigError as err:  # listed in the file's section order, whichever model checked
        problems = sorted(err.problems, key=lambda p: _section_rank(p[0]))
        raise ConfigError("", problems=missing + problems) from None
    if missing:
        raise ConfigError("", problems=missing)
    return params


def _section_rank(key: str) -> int:
    section = key.split(".", 1)[0].split("[", 1)[0]
    return SECTIONS.index(section) if section in SECTIONS else len(SECTIONS)
