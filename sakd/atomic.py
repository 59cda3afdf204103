"""Write-then-rename: an interrupted run never leaves a half-written file a later run would trust.

Every output (datasets, checkpoints, metrics, reports, plots, params.yaml) goes through
`atomic_write`: the content goes to a temporary file in the destination's own folder (same file
system, so the rename is atomic), is flushed to disk, and only then replaces the destination.
On any error the temporary file is removed and the previous file is left as it was.

Temporary entries are named `.tmp-<name>-<random>.tmp`; `remove_temporaries` sweeps what a
killed process left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".tmp"


def atomic_write(
    path: Path, write_fn: Callable[[Path], object], *, mode: int | None = None
) -> None:
    """Call write_fn(temp_path), fsync, optionally chmod to `mode`, then rename onto `path`.

    mode=None keeps the temporary file's 0600; nothing is left behind when anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}-", suffix=TEMP_SUFFIX
    )
    os.close(fd)
    tmp = Path(name)
    try:
        write_fn(tmp)
        _fsync(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` as UTF-8."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode=mode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, data: Any) -> None:
    """Indented, key-sorted JSON with a final newline (stable diffs, DVC-friendly metrics)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to `path` (plain tensors/containers only, so weights_only loads it)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


@contextmanager
def temporary_dir(parent: Path) -> Iterator[Path]:
    """A scratch folder inside `parent`, removed on exit whatever happens."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=TEMP_PREFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_temporaries(folder: Path) -> None:
    """Delete leftovers of interrupted writes (only entries named with TEMP_PREFIX)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush the written bytes to disk, so the rename never publishes a file still in cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
