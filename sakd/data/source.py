"""The dataset registry and the contract of an entry: static info, fetch, load.

In-memory datasets share one fetch protocol (`InMemorySource`): skip when the manifest matches,
otherwise drop the manifest, convert into train.pt/test.pt (each written atomically), and write
the manifest last. A subclass only says how to convert; one converted from a downloaded archive
(`ArchiveSource`) only says how to read that archive.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from sakd.atomic import remove_temporaries
from sakd.data.download import RemoteFile, obtain_archive
from sakd.data.errors import DatasetNotFetchedError, DatasetOptionError, fetch_hint
from sakd.data.info import DatasetInfo
from sakd.data.manifest import manifest_problem, read_manifest, remove_manifest, write_manifest
from sakd.data.tensor_store import InMemoryImageDataset, load_split, split_path
from sakd.registry import Registry

SPLITS = ("train", "test")


class DatasetSource(ABC):
    """One registered dataset.

    content_options: options that change the stored data (recorded in the manifest; load must
    ask for the same). fetch_options: options that only change how fetching happens (e.g.
    `download`); load accepts and ignores them so one options dict can feed both.
    """

    info: ClassVar[DatasetInfo]
    content_options: ClassVar[Mapping[str, Any]] = {}
    fetch_options: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that declares its own `info` is a dataset: it joins DATASETS under
        `info.name`, so the name is written once (the kinds of source, without info, do not)."""
        super().__init_subclass__(**kwargs)
        if "info" in vars(cls):
            DATASETS.register(cls.info.name)(cls)

    def resolve_options(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(content options, fetch options) with defaults filled; unknown names are rejected."""
        valid = {**self.content_options, **self.fetch_options}
        unknown = sorted(set(given) - set(valid))
        if unknown:
            names = ", ".join(sorted(valid)) or "none"
            raise DatasetOptionError(
                f"unknown option(s) {unknown} for dataset {self.info.name!r}; valid: {names}"
            )
        content = {k: given.get(k, v) for k, v in self.content_options.items()}
        fetching = {k: given.get(k, v) for k, v in self.fetch_options.items()}
        self.check_options(content)
        return content, fetching

    def check_options(self, content: dict[str, Any]) -> None:
        """Raise DatasetOptionError for a bad content option value (before touching any file)."""
        return None  # most datasets have nothing to check

    def loader_info(self, root: Path, **options: Any) -> DatasetInfo:
        """The info the loaders use; a dataset whose statistics are measured at fetch time
        (glyphs) returns them from its manifest."""
        return self.info

    @abstractmethod
    def fetch(self, root: Path, **options: Any) -> Path:
        """Make the dataset ready under root (idempotent); return the folder that holds it."""

    @abstractmethod
    def load(self, root: Path, split: str, **options: Any) -> Dataset:
        """The fetched split as a Dataset; DatasetNotFetchedError (with a hint) if not ready."""


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetOptionError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


class InMemorySource(DatasetSource):
    """A dataset converted once into root/<name>/{train,test}.pt plus manifest.json."""

    @abstractmethod
    def convert(self, folder: Path, content: dict[str, Any], fetching: dict[str, Any]) -> dict:
        """Write train.pt and test.pt into folder (via save_split); return extra manifest facts."""

    def folder(self, root: Path) -> Path:
        return Path(root) / self.info.name

    def fetch(self, root: Path, **options: Any) -> Path:
        content, fetching = self.resolve_options(options)
        folder = self.folder(root)
        if manifest_problem(read_manifest(folder), folder, self.info.name, content) is None:
            return folder
        remove_manifest(folder)
        remove_temporaries(folder)
        folder.mkdir(parents=True, exist_ok=True)
        extra = self.convert(folder, content, fetching)
        files = [split_path(folder, s).name for s in SPLITS]
        write_manifest(folder, self.info.name, content, files, extra)
        return folder

    def load(self, root: Path, split: str = "train", **options: Any) -> InMemoryImageDataset:
        check_split(split)
        content, _ = self.resolve_options(options)
        folder = self.folder(root)
        problem = manifest_problem(read_manifest(folder), folder, self.info.name, content)
        if problem:
            raise DatasetNotFetchedError(
                f"dataset {self.info.name!r} is not ready in {folder}: {problem}; "
                f"{fetch_hint(self.info.name)}"
            )
        return load_split(split_path(folder, split))


DOWNLOADS = "downloads"  # root/downloads/: archives, kept apart from the converted data


def downloads_folder(root: Path) -> Path:
    """Where archives are downloaded to or placed by hand: outside root/<dataset>/, the fetch
    stage's DVC output, which DVC deletes before the stage runs (a placed archive must survive)."""
    return Path(root) / DOWNLOADS


class ArchiveSource(InMemorySource):
    """An in-memory dataset converted from one checksummed archive (downloaded unless told not)
    kept in root/downloads/."""

    remote: ClassVar[RemoteFile]
    fetch_options: ClassVar[Mapping[str, Any]] = {"download": True}

    @abstractmethod
    def convert_archive(self, archive: Path, folder: Path) -> None:
        """Write train.pt and test.pt into folder from the verified archive (via save_split)."""

    def convert(self, folder: Path, content: dict[str, Any], fetching: dict[str, Any]) -> dict:
        downloads = downloads_folder(folder.parent)
        remove_temporaries(downloads)  # a killed download's partial file
        archive = obtain_archive(self.remote, downloads, self.info.name,
                                 bool(fetching["download"]))
        self.convert_archive(archive, folder)
        return {"archive": archive.name, "archive_md5": self.remote.md5}


DATASETS: Registry[DatasetSource] = Registry("dataset")
