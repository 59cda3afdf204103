"""`cifar100`: the official CIFAR-100 python archive, converted to uint8 tensors.

The archive holds pickled dicts; they are read with an unpickler that only resolves the numpy
array constructors the format needs, so even a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sakd.atomic import temporary_dir
from sakd.data.archives import extract_tar
from sakd.data.download import RemoteFile
from sakd.data.errors import InvalidDatasetError
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.source import ArchiveSource
from sakd.data.tensor_store import save_split, split_path

ARCHIVE = RemoteFile(
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    filename="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)
ARCHIVE_DIR = "cifar-100-python"  # top folder inside the archive: train, test, meta


def _numpy_core() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    reconstruct = _numpy_core()._reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,  # bytes written by Python 3 pickles
    }


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle (written by Python 2) as a dict with str keys."""
    try:
        with path.open("rb") as f:
            data = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise InvalidDatasetError(f"{path} is not a readable CIFAR pickle: {err}") from err
    if not isinstance(data, dict):
        raise InvalidDatasetError(f"{path}: expected a pickled dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> uint8 images [N,3,32,32] (rows are R,G,B planes) + int64 labels."""
    batch = read_pickle(path)
    if "data" not in batch or "fine_labels" not in batch:
        raise InvalidDatasetError(f"{path}: expected keys 'data' and 'fine_labels'")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InvalidDatasetError(
            f"{path}: data is {data.dtype} {data.shape}, expected uint8 [N, 3072]"
        )
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    labels = torch.as_tensor(np.asarray(batch["fine_labels"], dtype=np.int64))
    return images, labels


class Cifar100Source(ArchiveSource):
    info = DatasetInfo(
        name="cifar100",
        num_classes=100,
        input_size=32,
        mean=(0.5071, 0.4867, 0.4408),
        std=(0.2675, 0.2565, 0.2761),
        in_memory=True,
        augment=AugmentSpec(pad=4, random_crop=True, flip=True),
        description="CIFAR-100 (50,000 train / 10,000 test, 32x32, 100 classes)",
    )
    remote = ARCHIVE

    def convert_archive(self, archive: Path, folder: Path) -> None:
        with temporary_dir(folder) as scratch:
            extract_tar(archive, scratch)
            base = scratch / ARCHIVE_DIR
            classes = read_pickle(base / "meta").get("fine_label_names")
            if not isinstance(classes, list):
                raise InvalidDatasetError(f"{archive}: meta has no fine_label_names list")
            for split in ("train", "test"):
                if not (base / split).is_file():
                    raise InvalidDatasetError(f"{archive} has no member {ARCHIVE_DIR}/{split}")
                images, labels = read_batch(base / split)
                save_split(split_path(folder, split), images, labels, classes)
