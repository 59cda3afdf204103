"""Datasets: registry, fetch + verify of real datasets, and fast on-device loaders.

Knows nothing of DVC or params.yaml: every function takes a root folder and plain options.
"""

from sakd.data.api import (
    dataset_source,
    fetch_dataset,
    get_dataset_info,
    list_datasets,
    load_dataset,
)
from sakd.data.device_loader import DeviceLoader
from sakd.data.errors import (
    ChecksumError,
    DataError,
    DatasetNotFetchedError,
    DatasetOptionError,
    DownloadError,
    InvalidDatasetError,
    UnsafeArchiveError,
)
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.loaders import BatchLoader, SplitLoaders, build_loaders, build_split_loaders
from sakd.data.streaming import StreamingLoader
from sakd.data.tensor_store import InMemoryImageDataset

__all__ = [
    "AugmentSpec",
    "BatchLoader",
    "ChecksumError",
    "DataError",
    "DatasetInfo",
    "DatasetNotFetchedError",
    "DatasetOptionError",
    "DeviceLoader",
    "DownloadError",
    "InMemoryImageDataset",
    "InvalidDatasetError",
    "SplitLoaders",
    "StreamingLoader",
    "UnsafeArchiveError",
    "build_loaders",
    "build_split_loaders",
    "dataset_source",
    "fetch_dataset",
    "get_dataset_info",
    "list_datasets",
    "load_dataset",
]
