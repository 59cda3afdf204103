"""Write-then-rename: an interrupted run never leaves a half-written file a later run would trust.

Every output (datasets, checkpoints, metrics, reports, plots, params.yaml) goes through
`atomic_write`: the content goes to a temporary file in the destination's own folder (same file
system, so the rename is atomic), is flushed to disk, and only then replaces the destination.
On any error the temporary file is removed and the previous file is left as it was.

An operating-system failure (read-only folder, full disk) becomes a WriteError naming the file
and the cause, which the CLI prints as one line.

Temporary entries are named `.tmp-<name>-<random>.tmp`; `remove_temporaries` sweeps what a
killed process left behind.
"""

from __future__ import annotations

import errno
import io
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


class WriteError(OSError):
    """An output could not be written (permissions, full disk, ...); nothing half-written."""


def _write_error(path: Path, err: OSError) -> WriteError:
    cause = errno.errorcode.get(err.errno or 0, type(err).__name__)
    return WriteError(
        err.errno, f"cannot write {path}: {err.strerror or err} ({cause}); nothing was written "
        f"there and any previous file is unchanged. Free space or fix the folder's permissions, "
        f"then rerun."
    )


def atomic_write(
    path: Path, write_fn: Callable[[Path], object], *, mode: int | None = None
) -> None:
    """Call write_fn(temp_path), fsync, optionally chmod to `mode`, then rename onto `path`.

    mode=None keeps the temporary file's 0600; nothing is left behind when anything fails, and
    an OSError becomes a WriteError naming `path` and the cause.
    """
    path = Path(path)
    tmp = _new_temporary(path)
    try:
        write_fn(tmp)
        _fsync(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except WriteError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path) -> Path:
    """An empty temp file beside `path` (same file system, so the final rename is atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}-", suffix=TEMP_SUFFIX
        )
    except OSError as err:
        raise _write_error(path, err) from None
    os.close(fd)
    return Path(name)


def ensure_writable(path: Path) -> None:
    """WriteError now, not after hours of training, if `path` cannot be written later."""
    _new_temporary(Path(path)).unlink()


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` as UTF-8."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode=mode)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def _write_bytes(tmp: Path, data: bytes | memoryview) -> None:
    with tmp.open("wb") as f:
        f.write(data)


def atomic_write_json(path: Path, data: Any) -> None:
    """Indented, key-sorted JSON with a final newline (stable diffs, DVC-friendly metrics)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to `path` (plain tensors/containers only, so weights_only loads it).

    Serialised in memory first, then written by Python: a full disk is then an OSError naming
    the file, not torch's "enforce fail at inline_container.cc"."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


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
