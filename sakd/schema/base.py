"""The config base model and the value types params.yaml is made of (the names of distill-side
registries, which import distiller and spot code to validate, live in sakd.config.names).

Every model is frozen, refuses unknown keys, NaN and infinity, and takes no type coercion (a
bool is not an int, 1.5 does not become 1, "10" is not a number). Registry-backed names are
checked against their registry when validated, so the message can list the valid ones.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from sakd.schema.errors import ConfigError, config_error

M = TypeVar("M", bound=BaseModel)


class ConfigModel(BaseModel):
    """A params.yaml section: strict, frozen, unknown keys refused; null means all defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)
    # Keys added after run hashes were published: left out of `config_hash` while at this
    # value (the behaviour from before the key), so existing runs keep their hash and resume.
    hash_neutral_defaults: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _null_is_defaults(cls, data: Any) -> Any:
        return {} if data is None else data

    def check(self) -> None:
        """Validate again (after `replace`); raises ConfigError with keys relative to self."""
        validate(type(self), self.model_dump())


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """`model` from plain data; every problem in one ConfigError naming its dotted key."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise config_error(err, model, prefix) from None


def replace(cfg: M, **changes: Any) -> M:
    """A copy of `cfg` with `changes` (like dataclasses.replace; unvalidated: call .check())."""
    return cfg.model_copy(update=changes)


def names_from(module: str, attribute: str) -> Callable[[], list[str]]:
    """The names `module.attribute` holds (a function that lists them, or a mapping), read
    when a value is validated: the import waits until then, so loading the schema imports
    no model, dataset or distiller code."""
    def names() -> list[str]:
        found = getattr(importlib.import_module(module), attribute)
        return list(found() if callable(found) else found)

    return names


def registry_name(what: str, names: Callable[[], Any]) -> AfterValidator:
    """A str validator against a registry's names, read when a value is validated (the
    registry is the one list of choices; the message lists the valid ones)."""
    def check(value: str) -> str:
        valid = sorted(names())
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
        return value

    return AfterValidator(check)


def registered_name(what: str, module: str, attribute: str) -> Any:
    """The type of a params value that must be one of the names `module.attribute` lists."""
    return Annotated[str, registry_name(what, names_from(module, attribute))]


def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]{1,3})?", value):
        raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}")
    return value


def _relative_root(value: str) -> str:
    parts = value.replace("\\", "/").split("/")
    if not value or value.startswith(("/", "~")) or re.match(r"[A-Za-z]:", value) or ".." in parts:
        raise ValueError(f"must be a relative path inside the repository (no '..'), got {value!r}")
    return value


def storage_problem(url: str) -> str | None:
    """Why `url` is not usable as params.yaml's Optuna storage (None when it is): storages
    Optuna cannot open, and passwords written into the file. The one home of this rule;
    sakd.tuning.storage asks it too."""
    head, sep, rest = url.partition(":")
    scheme = head.split("+", 1)[0].lower() if sep else ""
    if scheme not in ("sqlite", "postgresql", "mysql", "journal"):
        return (f"unknown storage {url.split('@')[-1]!r}; valid: sqlite:///<file>, "
                "journal:<file>, postgresql://..., mysql://...")
    if scheme == "journal" and not (rest[3:] if rest.startswith("///") else rest):
        return "journal storage needs a file: journal:<path>"
    if scheme != "journal" and re.match(r"//[^/@]*:[^/@]+@", rest):
        return ("the URL holds a password: keep credentials out of params.yaml; put the URL in "
                "the SAKD_OPTUNA_STORAGE environment variable (or use PGPASSWORD / ~/.pgpass)")
    return None


def _storage(url: str) -> str:
    problem = storage_problem(url)
    if problem:
        raise ValueError(problem)
    return url


DatasetName = registered_name("dataset", "sakd.data", "list_datasets")
ModelName = registered_name("model", "sakd.models", "list_models")
OptimizerName = registered_name("optimizer", "sakd.train.optimizers", "list_optimizers")
Device = Annotated[str, AfterValidator(_device)]
RelativeRoot = Annotated[str, AfterValidator(_relative_root)]
StorageUrl = Annotated[str, AfterValidator(_storage)]

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Epochs = Annotated[int, Field(ge=1, le=100_000)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]  # trials, steps, images: >= 0, bounded
Workers = Annotated[int, Field(ge=0, le=1024)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
Weight = Annotated[float, Field(ge=0, le=1e6)]  # loss weights (beta1, beta2, beta3)
Temperature = Annotated[float, Field(gt=0, le=1e4)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Decay = Annotated[float, Field(ge=0, le=1)]


def non_empty(what: str) -> Callable[[list[Any]], list[Any]]:
    """A list validator refusing an empty list (a matrix axis with nothing in it runs nothing)."""

    def check(names: list[Any]) -> list[Any]:
        if not names:
            raise ValueError(f"list at least one {what}")
        return names

    return check


def unique(key_what: str, names: list[str] | None) -> list[str] | None:
    """Refuse a repeated name in a list (a duplicate would run or search it twice)."""
    if names is not None and len(set(names)) != len(names):
        raise ValueError(f"duplicate {key_what} in {names}")
    return names


__all__ = ["ConfigError", "ConfigModel", "replace", "validate"]
