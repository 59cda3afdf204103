"""Config objects as run identity: a stable short hash (run tags, resume safety) and the flat
dotted form MLflow params take."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


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
