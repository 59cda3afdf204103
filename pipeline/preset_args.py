"""A preset as `dvc exp run -S` overrides, so a paper experiment is queued without touching
params.yaml: `sakd preset cifar100_homogeneous --dvc-args | xargs dvc exp run --queue`.

The overrides turn the current params.yaml into the preset (its sections replace ours, the
sections it leaves out stay), in the Hydra override grammar DVC's `-S` parses.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError
from sakd.config import load_params

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"null", "true", "false", "nan", "inf", "yes", "no", "on", "off"}


def preset_dvc_args(source: Path, target: Path) -> list[str]:
    """The `-S` arguments that turn params file `target` into preset `source`, validated the
    way `sakd preset` validates a switch (nothing is written)."""
    preset, current = _read(source), _read(target)
    wanted = load_params({**current, **preset})  # a bad preset fails here, naming the key
    if load_params({**current, **_without_empty(preset)}) != wanted:
        raise UserError(f"{source}: an empty mapping in it differs from the key's default, which "
                        "`dvc exp run -S` cannot write; use `sakd preset` and `dvc exp run`")
    return dvc_set_args(preset, current)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of sections, got {type(data).__name__}")
    return data


def dvc_set_args(preset: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`-S` arguments (shell-quoted) that make `current` equal to `current` updated by
    `preset`'s sections; empty when nothing differs."""
    args: list[str] = []
    for override in _overrides(preset, current, ""):
        args += ["-S", shlex.quote(override)]
    return args


def _overrides(new: Mapping[str, Any], old: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, value in new.items():
        path = f"{prefix}{key}"
        if key not in old:
            yield f"+{path}={hydra_value(value)}"
        elif value == {} and old[key]:
            yield f"~{path}"  # the default (checked); DVC's YAML writer breaks on `key: {}`
        elif isinstance(value, Mapping) and isinstance(old[key], Mapping):
            yield from _overrides(value, old[key], f"{path}.")
            yield from (f"~{path}.{gone}" for gone in old[key] if gone not in value)
        elif value != old[key]:
            yield f"{path}={hydra_value(value)}"


def _without_empty(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _without_empty(v) if isinstance(v, Mapping) else v
            for k, v in data.items() if v != {}}


def hydra_value(value: Any) -> str:
    """A YAML value in Hydra's override grammar: no spaces outside quoted strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value  # names (resnet56, cifar100): readable, no quotes to survive the shell
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a Hydra override")
