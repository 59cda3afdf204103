"""Errors for data problems a user can fix; the CLI prints their message without a traceback."""

from __future__ import annotations


class DataError(Exception):
    """Base class: a dataset is missing, corrupted, unsafe or asked for with bad options."""


class DatasetNotFetchedError(DataError):
    """The dataset (or its archive) is not on disk yet; the message says how to fetch it."""


class DownloadError(DataError):
    """The download failed; the message names the URL, the file and where to place it by hand."""


class ChecksumError(DataError):
    """A file's md5 differs from the expected one; the message names the file and both digests."""


class UnsafeArchiveError(DataError):
    """An archive holds an entry that would land outside the extraction folder (or a link)."""


class InvalidDatasetError(DataError, ValueError):
    """Data on disk does not have the expected layout, shapes or types."""


class DatasetOptionError(DataError, ValueError):
    """An unknown or invalid dataset option (the message lists the valid ones)."""


def fetch_hint(name: str) -> str:
    """The one-line instruction every 'missing data' message ends with."""
    return f"fetch it with `sakd fetch {name}` (or `dvc repro fetch` in the pipeline)"
