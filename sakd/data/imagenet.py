"""`imagenet`: an existing ImageFolder tree (train/ and val/, one folder per class), streamed.

Nothing is downloaded: ILSVRC-2012 needs a login. `fetch` validates the tree and records its
path in root/imagenet/manifest.json so later stages find it. Items are uint8 [3,224,224] tensors
(normalisation happens on the device, as for the in-memory datasets) plus the label and row index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from sakd.atomic import atomic_write_json
from sakd.data.errors import DatasetNotFetchedError, InvalidDatasetError
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.manifest import FORMAT_VERSION, MANIFEST_NAME, read_manifest
from sakd.data.source import DatasetSource, check_split

SPLIT_DIRS = {"train": "train", "test": "val"}
FETCH_HINT = "run `sakd fetch imagenet --path /path/to/imagenet` (or `dvc repro fetch`)"


# torchvision is imported where it is used: importing it costs seconds at every CLI start.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def indexed_image_folder(root: str, transform: Callable | None = None):
    """An ImageFolder whose items also carry their row index (CRD keys its memory by it)."""
    from torchvision.datasets import ImageFolder

    class IndexedImageFolder(ImageFolder):
        def __getitem__(self, index: int) -> tuple[Any, int, int]:
            image, target = super().__getitem__(index)
            return image, target, index

    return IndexedImageFolder(root, transform=transform)


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _has_image(folder: Path) -> bool:
    for _, _, files in os.walk(folder):
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def validate_image_folder(tree: Path) -> list[str]:
    """The class names shared by tree/train and tree/val; a clear error for any other layout."""
    if not tree.is_dir():
        raise DatasetNotFetchedError(f"ImageNet folder {tree} does not exist; {FETCH_HINT}")
    per_split = {}
    for split_dir in SPLIT_DIRS.values():
        path = tree / split_dir
        if not path.is_dir():
            raise InvalidDatasetError(
                f"{tree} has no {split_dir}/ folder (expected train/ and val/)"
            )
        classes = _class_dirs(path)
        if not classes:
            flat = _has_image(path)
            hint = " (images lie flat: sort them into one folder per class first)" if flat else ""
            raise InvalidDatasetError(f"{path} has no class folders{hint}")
        per_split[split_dir] = classes
    train, val = per_split["train"], per_split["val"]
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise InvalidDatasetError(
            f"{tree}: train/ and val/ have different classes "
            f"(only in train: {only_train[:5]}, only in val: {only_val[:5]})"
        )
    for split_dir in SPLIT_DIRS.values():
        for name in train:
            if not _has_image(tree / split_dir / name):
                raise InvalidDatasetError(f"{tree / split_dir / name} holds no images")
    return train


def streamed_transform(info: DatasetInfo, augment: AugmentSpec, train: bool) -> Callable:
    """PIL image -> uint8 tensor [3,S,S]: the standard ImageNet crops, without normalisation."""
    from torchvision import transforms

    size = info.input_size
    steps: list[Callable] = []
    if train:
        steps.append(
            transforms.RandomResizedCrop(size)
            if augment.random_resized_crop
            else transforms.CenterCrop(size)
        )
        if augment.flip:
            steps.append(transforms.RandomHorizontalFlip())
    else:
        steps += [transforms.Resize(augment.eval_resize or size), transforms.CenterCrop(size)]
    steps.append(transforms.PILToTensor())
    return transforms.Compose(steps)


class ImageNetSource(DatasetSource):
    info = DatasetInfo(
        name="imagenet",
        num_classes=1000,
        input_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        in_memory=False,
        augment=AugmentSpec(flip=True, random_resized_crop=True, eval_resize=256),
        description="ImageNet (ILSVRC-2012) from an existing ImageFolder tree, streamed",
    )
    content_options: ClassVar[Mapping[str, Any]] = {"path": None}

    def folder(self, root: Path) -> Path:
        return Path(root) / self.info.name

    def locate(self, root: Path, path: str | Path | None) -> Path:
        """The tree: the given path, else the one recorded by fetch, else root/imagenet itself."""
        if path is not None:
            return Path(path).expanduser()
        manifest = read_manifest(self.folder(root)) or {}
        recorded = manifest.get("options", {}).get("path")
        if recorded:
            return Path(recorded)
        if (self.folder(root) / "train").is_dir():
            return self.folder(root)
        raise DatasetNotFetchedError(
            f"no ImageNet tree recorded in {self.folder(root) / MANIFEST_NAME} and none at "
            f"{self.folder(root)}; {FETCH_HINT}"
        )

    def fetch(self, root: Path, **options: Any) -> Path:
        content, _ = self.resolve_options(options)
        tree = self.locate(root, content["path"]).resolve()
        classes = validate_image_folder(tree)
        record = {
            "format_version": FORMAT_VERSION,
            "dataset": self.info.name,
            "options": {"path": str(tree)},
            "files": {},
            "num_classes": len(classes),
        }
        atomic_write_json(self.folder(root) / MANIFEST_NAME, record)
        return tree

    def load(self, root: Path, split: str = "train", **options: Any) -> Any:
        check_split(split)
        content, _ = self.resolve_options(options)
        tree = self.locate(root, content["path"])
        validate_image_folder(tree)
        transform = streamed_transform(self.info, self.info.augment, train=split == "train")
        return indexed_image_folder(str(tree / SPLIT_DIRS[split]), transform=transform)


def labels_of(dataset: Any) -> torch.Tensor:
    return torch.tensor(dataset.targets, dtype=torch.int64)
