"""CLI names are registry names, checked before any path is built from them.

A name like `../../x` would otherwise become a file path (models/teachers/<dataset>/<arch>.pt)
and read or write outside the repository.
"""

from __future__ import annotations

from collections.abc import Callable

from sakd.registry import Registry


def _models() -> Registry:
    from sakd.models import MODELS

    return MODELS


def _distillers() -> Registry:
    from sakd.distillers import DISTILLERS

    return DISTILLERS


def _strategies() -> Registry:
    from sakd.spots.strategies import STRATEGIES

    return STRATEGIES


def _datasets() -> Registry:
    from sakd.data.api import DATASETS  # importing api fills the registry

    return DATASETS


# CLI option -> the registry its value must be in (imported lazily: `sakd --help` stays quick)
REGISTRIES: dict[str, Callable[[], Registry]] = {
    "teacher": _models, "student": _models, "arch": _models,
    "distiller": _distillers, "strategy": _strategies, "dataset": _datasets,
}


def check_names(**names: str | None) -> None:
    """UnknownNameError (naming the option and listing the valid names) for any unregistered
    value; None means "not given"."""
    for option, name in names.items():
        if name is None:
            continue
        registry = REGISTRIES[option]()
        if name not in registry:
            registry.get(name)  # raises, listing the valid names
