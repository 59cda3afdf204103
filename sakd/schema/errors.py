"""ConfigError: every problem of a params file at once, each named by its dotted key.

Pydantic reports problems by location tuples; users edit YAML, so each becomes one line
`distill.tau.tau0: must be > 0, got -1.0` (list items as `runs.pairs[1].teacher`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

Problem = tuple[str, str]


class ConfigError(ValueError):
    """Bad configuration; `problems` lists (dotted key, message), `key` is the first one's."""

    def __init__(self, key: str, message: str = "", *,
                 problems: Sequence[Problem] | None = None) -> None:
        self.problems: list[Problem] = list(problems) if problems else [(key, message)]
        self.key, self.message = self.problems[0]
        super().__init__("\n".join(f"{k}: {m}" if k else m for k, m in self.problems))

    def under(self, prefix: str) -> ConfigError:
        """The same problems with their keys nested under `prefix`."""
        return ConfigError("", problems=[(join_key(prefix, k), m) for k, m in self.problems])


def join_key(prefix: str, key: str) -> str:
    """`distill` + `tau.tau0` -> `distill.tau.tau0`; `runs.pairs` + `[1]` -> `runs.pairs[1]`."""
    if not prefix or not key:
        return prefix or key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def dotted(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad dict key: the key itself is named
            continue
        key = join_key(key, f"[{part}]" if isinstance(part, int) else str(part))
    return key


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
_EXPECTED = {"int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
             "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
             "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type":
             "a mapping", "none_required": "null"}


def _message(error: Any, root: type[BaseModel] | None) -> list[Problem]:
    """(relative key, message) pairs for one pydantic error."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    cause = ctx.get("error")
    if isinstance(cause, ConfigError):
        return cause.problems
    if isinstance(cause, ValueError | AssertionError):
        return [("", str(cause))]
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        return [("", f"must be {sign} {ctx[name]}, got {_short(got)}")]
    if kind in _EXPECTED:
        return [("", f"expected {_EXPECTED[kind]}, got {_short(got)}")]
    if kind == "finite_number":
        return [("", f"must be a finite number, got {_short(got)}")]
    if kind == "literal_error":
        return [("", f"{_short(got)} is not one of {ctx['expected']}")]
    if kind == "too_short":
        return [("", "list at least one value (or leave the key out where it may be omitted)")]
    if kind == "missing":
        return [("", "missing required key")]
    if kind == "extra_forbidden":
        valid = ", ".join(valid_keys(root, error["loc"][:-1])) or "none"
        return [("", f"unknown key; valid keys here: {valid}")]
    return [("", f"{error['msg']}, got {_short(got)}")]


def config_error(err: ValidationError, root: type[BaseModel] | None = None,
                 prefix: str = "") -> ConfigError:
    """All problems of a pydantic ValidationError as one ConfigError with dotted keys."""
    problems: list[Problem] = []
    for error in err.errors(include_url=False):
        where = join_key(prefix, dotted(error["loc"]))
        problems += [(join_key(where, k), m) for k, m in _message(error, root)]
    return ConfigError("", problems=problems)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def valid_keys(root: type[BaseModel] | None, loc: Sequence[int | str]) -> list[str]:
    """The field names of the model at `loc` under `root` (for 'unknown key' messages)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field else None
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    return sorted(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []
