"""Distiller options declared by the distiller: `distill.options.<name>.<key>` in params.yaml.

A distiller class with settings declares a nested `Options` model (defaults, constraints);
params are validated against it, so a misspelt or misplaced option fails early by its key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sakd.distillers.factory import DISTILLERS


class DistillerOptions(BaseModel):
    """Base of every `Options`: strict, frozen, unknown keys, NaN and infinity refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class NoOptions(DistillerOptions):
    """The options of a distiller that declares none."""


def options_model(name: str) -> type[BaseModel]:
    """The Options model distiller `name` declares (NoOptions when it declares none).

    Raises UnknownNameError listing the valid names for an unknown distiller."""
    return getattr(DISTILLERS.get(name), "Options", NoOptions)
