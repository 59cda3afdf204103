"""In-memory image datasets: uint8 [N,3,H,W] + int64 labels, stored as a .pt of plain tensors."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from sakd.atomic import atomic_torch_save
from sakd.data.errors import InvalidDatasetError


def check_arrays(images: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    """Raise InvalidDatasetError unless images are uint8 [N,3,H,W] and labels int64 [N]."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise InvalidDatasetError(f"{where}: images must be a uint8 tensor [N,3,H,W]")
    if images.shape[1] != 3:
        raise InvalidDatasetError(f"{where}: images have {images.shape[1]} channels, expected 3")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
        raise InvalidDatasetError(f"{where}: labels must be an int64 tensor [N]")
    if labels.shape[0] != images.shape[0]:
        raise InvalidDatasetError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")


class InMemoryImageDataset(TensorDataset):
    """A TensorDataset of (uint8 image [3,H,W], int64 label) with named classes."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> None:
        check_arrays(images, labels, "InMemoryImageDataset")
        super().__init__(images, labels)
        self.classes = list(classes)

    @property
    def images(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors[1]


def split_path(folder: Path, split: str) -> Path:
    """Where a converted split lives: <folder>/<split>.pt."""
    return Path(folder) / f"{split}.pt"


def save_split(path: Path, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> None:
    check_arrays(images, labels, str(path))
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise InvalidDatasetError(f"{path}: labels fall outside 0..{len(classes) - 1}")
    payload = {"images": images.contiguous(), "labels": labels, "classes": list(classes)}
    atomic_torch_save(payload, path)


def load_split(path: Path) -> InMemoryImageDataset:
    """Load with weights_only=True (a file from elsewhere cannot run code) and check its layout."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise InvalidDatasetError(f"{path} is not a readable dataset file: {err}") from err
    if not isinstance(payload, dict) or not {"images", "labels", "classes"} <= payload.keys():
        raise InvalidDatasetError(f"{path}: expected a dict with images, labels and classes")
    check_arrays(payload["images"], payload["labels"], str(path))
    return InMemoryImageDataset(payload["images"], payload["labels"], payload["classes"])
