"""Get a dataset archive onto disk, verified: accept a placed file or download one.

A download streams into a temp file, is checked against its md5 and only then renamed to its
final name, so a partial or corrupted download is never mistaken for a complete one.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sakd.atomic import atomic_write
from sakd.data.errors import ChecksumError, DatasetNotFetchedError, DownloadError, fetch_hint
from sakd.data.progress import byte_progress

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """An archive published at `url`; `md5` is the digest of the official file."""

    url: str
    filename: str
    md5: str


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest: Path, timeout_s: float = 60.0) -> None:
    """Stream `url` into `dest` with a progress bar. Raises OSError on network failures."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response, dest.open("wb") as out:
        total = response.length
        with byte_progress(f"downloading {dest.name}", total) as advance:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                advance(len(chunk))


def verify_md5(path: Path, expected: str) -> None:
    """Raise ChecksumError naming the file and both digests when they differ."""
    actual = md5_of(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected md5 {expected}, got {actual}. "
            "The file is incomplete or not the official archive; delete it and fetch again."
        )


def _place_instructions(remote: RemoteFile, target: Path) -> str:
    return (
        f"Download {remote.url} yourself and put the file {remote.filename} exactly at {target} "
        f"(md5 {remote.md5}); the next fetch (`sakd fetch` or `dvc repro`, which leaves that "
        f"folder alone) verifies and uses it."
    )


def obtain_archive(remote: RemoteFile, folder: Path, dataset: str, download: bool = True) -> Path:
    """Return folder/filename verified against the md5, downloading it first if it is absent."""
    target = folder / remote.filename
    if target.is_file():
        verify_md5(target, remote.md5)
        return target
    if not download:
        raise DatasetNotFetchedError(
            f"{target} is missing and downloading is disabled. "
            f"{_place_instructions(remote, target)}"
        )

    def fetch_into(tmp: Path) -> None:
        try:
            download_url(remote.url, tmp)
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"could not download {dataset} from {remote.url}: {err}. "
                f"{_place_instructions(remote, target)} Then {fetch_hint(dataset)}."
            ) from err
        actual = md5_of(tmp)
        if actual != remote.md5:
            raise ChecksumError(
                f"the download of {remote.filename} from {remote.url} has md5 {actual}, expected "
                f"{remote.md5} (incomplete or altered); nothing was kept. Retry, or place it by "
                f"hand: {_place_instructions(remote, target)}"
            )

    atomic_write(target, fetch_into)
    return target
