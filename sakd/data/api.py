"""The public dataset functions: list, describe, fetch, load (by registered name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

# imported for their registration side effect
from sakd.data import cifar100, digits, glyphs, imagenet, tiny_imagenet  # noqa: F401
from sakd.data.info import DatasetInfo
from sakd.data.source import DATASETS, DatasetSource


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_source(name: str) -> DatasetSource:
    """The registry entry; UnknownNameError (listing the valid names) for an unknown one."""
    return DATASETS.create(name)


def get_dataset_info(name: str) -> DatasetInfo:
    return dataset_source(name).info


def fetch_dataset(name: str, root: str | Path, **options: Any) -> Path:
    """Make `name` ready under root/<name>/ (download or accept a placed archive, verify,
    convert); a no-op when a complete fetch with the same options is already there.
    Returns the folder holding the ready data."""
    return dataset_source(name).fetch(Path(root), **options)


def load_dataset(name: str, root: str | Path, split: str = "train", **options: Any) -> Dataset:
    """The fetched split ("train" or "test"): an InMemoryImageDataset (uint8 [N,3,H,W] + int64
    labels) for in-memory datasets, an IndexedImageFolder for imagenet."""
    return dataset_source(name).load(Path(root), split, **options)
