"""The completion marker of a fetched dataset folder.

`manifest.json` is written last, only after every data file is in place; it records the options
that shaped the data and each file's size. No manifest (or one that disagrees) = not fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sakd.atomic import atomic_write_json

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON sees them (tuples become lists), so stored and asked-for compare equal."""
    return json.loads(json.dumps(options, sort_keys=True))


def write_manifest(
    folder: Path, dataset: str, options: dict[str, Any], files: list[str], extra: dict[str, Any]
) -> None:
    sizes = {name: (folder / name).stat().st_size for name in files}
    data = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "options": _plain(options),
        "files": sizes,
        **extra,
    }
    atomic_write_json(folder / MANIFEST_NAME, data)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest, or None when it is missing or unreadable (both mean 'not fetched')."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_manifest(folder: Path) -> None:
    """Invalidate the folder before rewriting any of its files."""
    (folder / MANIFEST_NAME).unlink(missing_ok=True)


def manifest_problem(
    manifest: dict[str, Any] | None, folder: Path, dataset: str, options: dict[str, Any]
) -> str | None:
    """Why the folder cannot be trusted for these options, or None when it can."""
    if manifest is None:
        return f"{folder / MANIFEST_NAME} is missing (never fetched, or a fetch was interrupted)"
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("dataset") != dataset:
        return f"{folder / MANIFEST_NAME} is from another dataset or format version"
    if manifest.get("options") != _plain(options):
        stored, asked = manifest.get("options"), _plain(options)
        return f"it was fetched with options {stored}, but {asked} were asked for"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f"{folder / MANIFEST_NAME} lists no files"
    for name, size in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{path} is missing or has changed since the fetch"
    return None
