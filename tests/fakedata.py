"""Builders of tiny archives and folders in the REAL dataset formats, for offline tests.

Each builder returns what the real fetch code should recover from it, so tests compare the
converted tensors against the truth rather than against the code's own output.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# ----------------------------------------------------------------------------- CIFAR-100
@dataclass
class FakeCifar:
    path: Path
    md5: str
    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 [N,3,32,32], labels)


def _tar_add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_cifar100_archive(
    path: Path,
    n_train: int = 12,
    n_test: int = 6,
    num_classes: int = 4,
    extra_members: tuple[tuple[str, bytes], ...] = (),
) -> FakeCifar:
    """cifar-100-python.tar.gz with the real members: pickled dicts `train`, `test`, `meta`
    (data: uint8 [N, 3072] as R, G, B planes; fine_labels; coarse_labels; filenames)."""
    rng = np.random.default_rng(123)
    classes = [f"class_{i}" for i in range(num_classes)]
    splits = {}
    with tarfile.open(path, "w:gz") as tar:
        top = tarfile.TarInfo("cifar-100-python")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        for split, n in (("train", n_train), ("test", n_test)):
            images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, num_classes, size=n).astype(np.int64)
            batch = {
                "filenames": [f"img_{i}.png" for i in range(n)],
                "batch_label": f"{split} batch 1 of 1",
                "fine_labels": [int(v) for v in labels],
                "coarse_labels": [0] * n,
                "data": images.reshape(n, 3072),
            }
            _tar_add_bytes(tar, f"cifar-100-python/{split}", pickle.dumps(batch, protocol=2))
            splits[split] = (images, labels)
        meta = {"fine_label_names": classes, "coarse_label_names": ["all"]}
        _tar_add_bytes(tar, "cifar-100-python/meta", pickle.dumps(meta, protocol=2))
        _tar_add_bytes(tar, "cifar-100-python/file.txt~", b"")
        for name, payload in extra_members:
            _tar_add_bytes(tar, name, payload)
    return FakeCifar(path, md5_of(path), classes, splits)


# ----------------------------------------------------------------------------- tiny-ImageNet
WNIDS = ["n02000002", "n01000001", "n03000003"]  # deliberately not sorted in wnids.txt
COLOURS = {"n01000001": (220, 30, 30), "n02000002": (30, 220, 30), "n03000003": (30, 30, 220)}
TINY = "tiny-imagenet-200"


def _jpeg(colour: tuple[int, int, int] | int, mode: str = "RGB", size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@dataclass
class FakeTiny:
    path: Path
    md5: str
    classes: list[str]  # sorted wnids = label order
    train_labels: list[int]  # in sorted member order
    val_labels: list[int]  # in sorted member order (val_0, val_1, ...)
    grey_val_row: int  # row (in the test split) of the greyscale image
    val_colours: list[tuple[int, int, int] | None] = field(default_factory=list)


def write_tiny_imagenet_zip(
    path: Path,
    train_per_class: int = 2,
    extra_members: tuple[tuple[str, bytes], ...] = (),
    drop_annotation: bool = False,
) -> FakeTiny:
    """tiny-imagenet-200.zip with the real layout: wnids.txt, words.txt,
    train/<wnid>/images/<wnid>_<i>.JPEG + <wnid>_boxes.txt, a FLAT val/images/ labelled by
    val/val_annotations.txt, unlabelled test/images/. val_2 is a greyscale JPEG."""
    classes = sorted(WNIDS)
    val_wnids = ["n03000003", "n01000001", "n02000002", "n03000003", "n02000002", "n01000001"]
    grey_index = 2
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{TINY}/", b"")
        zf.writestr(f"{TINY}/wnids.txt", "\n".join(WNIDS) + "\n")
        zf.writestr(f"{TINY}/words.txt", "".join(f"{w}\tthing {w}\n" for w in WNIDS))
        train_labels = []
        for wnid in classes:
            boxes = []
            for i in range(train_per_class):
                name = f"{wnid}_{i}.JPEG"
                zf.writestr(f"{TINY}/train/{wnid}/images/{name}", _jpeg(COLOURS[wnid]))
                boxes.append(f"{name}\t0\t0\t63\t63\n")
                train_labels.append(classes.index(wnid))
            zf.writestr(f"{TINY}/train/{wnid}/{wnid}_boxes.txt", "".join(boxes))
        lines, val_colours = [], []
        for i, wnid in enumerate(val_wnids):
            grey = i == grey_index
            data = _jpeg(128, mode="L") if grey else _jpeg(COLOURS[wnid])
            zf.writestr(f"{TINY}/val/images/val_{i}.JPEG", data)
            if not (drop_annotation and i == 0):
                lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63\n")
            val_colours.append(None if grey else COLOURS[wnid])
        zf.writestr(f"{TINY}/val/val_annotations.txt", "".join(lines))
        zf.writestr(f"{TINY}/test/images/test_0.JPEG", _jpeg((0, 0, 0)))
        for name, payload in extra_members:
            zf.writestr(name, payload)
    return FakeTiny(
        path=path,
        md5=md5_of(path),
        classes=classes,
        train_labels=train_labels,
        val_labels=[classes.index(w) for w in val_wnids],
        grey_val_row=grey_index,
        val_colours=val_colours,
    )


# ----------------------------------------------------------------------------- ImageFolder
def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "fox"),
    per_class: int = 2,
    val_classes: tuple[str, ...] | None = None,
    size: tuple[int, int] = (40, 30),
) -> Path:
    """root/train/<class>/*.png and root/val/<class>/*.png (the ImageNet ImageFolder layout)."""
    rng = np.random.default_rng(7)
    for split, names in (("train", classes), ("val", val_classes or classes)):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root
