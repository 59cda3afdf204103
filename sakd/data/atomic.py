"""Write-then-rename helpers: an interrupted run never leaves a file a later run would trust.

Every temporary entry starts with TEMP_PREFIX inside the folder it is destined for (same file
system, so the final os.replace is atomic) and `remove_temporaries` sweeps leftovers of killed runs.
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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(temp_path), then rename the temp file onto `path`; on any error remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}-")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to `path` atomically (plain tensors/containers only, so weights_only loads it)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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
