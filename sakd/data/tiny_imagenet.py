"""`tiny_imagenet`: the official Tiny-ImageNet-200 zip, decoded into uint8 tensors.

Images are read straight from the (member-checked) zip, so nothing is unpacked to disk. Class
indices follow sorted wnids (the ImageFolder convention). The official val folder is flat, with
labels in val_annotations.txt: every val image takes its label from there (reading val/ as an
image folder would silently give all 10,000 images one label). Test split = the official val.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sakd.data.archives import open_checked_zip
from sakd.data.download import RemoteFile
from sakd.data.errors import InvalidDatasetError
from sakd.data.info import AugmentSpec, DatasetInfo
from sakd.data.progress import track_items
from sakd.data.source import ArchiveSource
from sakd.data.tensor_store import save_split, split_path

ARCHIVE = RemoteFile(
    url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    filename="tiny-imagenet-200.zip",
    md5="90528d7ca1a48142e341f4ef8d21d0de",
)
TOP = "tiny-imagenet-200"
IMAGE_SIZE = 64
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

Sample = tuple[str, int]  # (zip member, label)


def _read_text(zf: zipfile.ZipFile, member: str, archive: Path) -> list[str]:
    try:
        text = zf.read(member).decode("utf-8")
    except KeyError:
        raise InvalidDatasetError(f"{archive} has no member {member}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_image(member: str) -> bool:
    return PurePosixPath(member).suffix.lower() in IMAGE_SUFFIXES


def train_samples(names: list[str], index: dict[str, int], archive: Path) -> list[Sample]:
    """train/<wnid>/images/<file>: the label is the wnid folder."""
    samples = []
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) == 5 and parts[:2] == (TOP, "train") and parts[3] == "images":
            if not _is_image(name):
                continue
            if parts[2] not in index:
                raise InvalidDatasetError(f"{archive}: {name} is in a class not in wnids.txt")
            samples.append((name, index[parts[2]]))
    return sorted(samples)


def val_samples(
    names: list[str], annotations: list[str], index: dict[str, int], archive: Path
) -> list[Sample]:
    """val/images/<file>, labelled by val_annotations.txt (file<TAB>wnid<TAB>box)."""
    label_of: dict[str, int] = {}
    for line in annotations:
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise InvalidDatasetError(f"{archive}: bad line in val_annotations.txt: {line!r}")
        label_of[fields[0]] = index[fields[1]]
    prefix = f"{TOP}/val/images/"
    images = {n[len(prefix) :]: n for n in names if n.startswith(prefix) and _is_image(n)}
    unlabelled = sorted(set(images) - set(label_of))
    missing = sorted(set(label_of) - set(images))
    if unlabelled or missing:
        raise InvalidDatasetError(
            f"{archive}: val images and val_annotations.txt disagree "
            f"(unlabelled: {unlabelled[:3]}, missing: {missing[:3]})"
        )
    return sorted((images[f], label) for f, label in label_of.items())


def decode_rgb(zf: zipfile.ZipFile, member: str, archive: Path) -> np.ndarray:
    """One image as uint8 [64,64,3]; greyscale (and CMYK) images are converted to RGB."""
    try:
        with Image.open(io.BytesIO(zf.read(member))) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise InvalidDatasetError(f"{archive}: cannot decode {member}: {err}") from err
    if rgb.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise InvalidDatasetError(
            f"{archive}: {member} is {rgb.shape[1]}x{rgb.shape[0]}, expected 64x64"
        )
    return rgb


def decode_split(
    zf: zipfile.ZipFile, samples: list[Sample], archive: Path, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if not samples:
        raise InvalidDatasetError(f"{archive} holds no {split} images")
    images = np.empty((len(samples), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for row, (member, _) in enumerate(
        track_items(samples, f"decoding tiny-imagenet {split}", total=len(samples))
    ):
        images[row] = decode_rgb(zf, member, archive).transpose(2, 0, 1)
    return torch.from_numpy(images), torch.tensor(
        [label for _, label in samples], dtype=torch.int64
    )


class TinyImageNetSource(ArchiveSource):
    info = DatasetInfo(
        name="tiny_imagenet",
        num_classes=200,
        input_size=64,
        mean=(0.4802, 0.4481, 0.3975),  # its own statistics (the authors' code reuses CIFAR's)
        std=(0.2302, 0.2265, 0.2262),
        in_memory=True,
        augment=AugmentSpec(flip=True),  # the paper: random horizontal flip only
        description="Tiny-ImageNet-200 (100,000 train / 10,000 val as test, 64x64, 200 classes)",
    )
    remote = ARCHIVE

    def convert_archive(self, archive: Path, folder: Path) -> None:
        with open_checked_zip(archive) as zf:
            names = zf.namelist()
            classes = sorted(_read_text(zf, f"{TOP}/wnids.txt", archive))
            index = {wnid: i for i, wnid in enumerate(classes)}
            annotations = _read_text(zf, f"{TOP}/val/val_annotations.txt", archive)
            splits = {
                "train": train_samples(names, index, archive),
                "test": val_samples(names, annotations, index, archive),
            }
            for split, samples in splits.items():
                images, labels = decode_split(zf, samples, archive, split)
                save_split(split_path(folder, split), images, labels, classes)
