"""Archive reading that cannot write outside its target folder."""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from sakd.data.errors import InvalidDatasetError, UnsafeArchiveError


def extract_tar(archive: Path, target: Path) -> None:
    """Extract with tarfile's `data` filter: no absolute paths, no `..`, no links leaving target."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except tarfile.FilterError as err:
        raise UnsafeArchiveError(f"{archive}: refusing to extract, {err}") from err
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise InvalidDatasetError(f"{archive} is not a readable tar archive: {err}") from err


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or (parts and ":" in parts[0]):
        return "an absolute or non-POSIX path"
    if ".." in parts:
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def open_checked_zip(archive: Path) -> zipfile.ZipFile:
    """Open a zip after checking every member name stays inside the archive's own tree."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise InvalidDatasetError(f"{archive} is not a readable zip archive: {err}") from err
    for info in zf.infolist():
        reason = _unsafe_reason(info)
        if reason:
            zf.close()
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} has {reason}; refusing to use this archive"
            )
    return zf
