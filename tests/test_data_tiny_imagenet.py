"""Tiny-ImageNet fetch on a tiny zip in the real layout (flat val/ + val_annotations.txt)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fakedata import FakeTiny, write_tiny_imagenet_zip

from sakd.data import (
    InvalidDatasetError,
    UnsafeArchiveError,
    build_loaders,
    fetch_dataset,
    load_dataset,
)
from sakd.data.tiny_imagenet import ARCHIVE, TinyImageNetSource


def place(fake: FakeTiny, root: Path, monkeypatch) -> None:
    monkeypatch.setattr(TinyImageNetSource, "remote", replace(ARCHIVE, md5=fake.md5))
    target = root / "downloads" / "tiny-imagenet-200.zip"
    target.parent.mkdir(parents=True)
    shutil.copy(fake.path, target)


@pytest.fixture
def fetched(tmp_path, monkeypatch) -> tuple[FakeTiny, Path]:
    fake = write_tiny_imagenet_zip(tmp_path / "tiny-imagenet-200.zip")
    root = tmp_path / "data"
    place(fake, root, monkeypatch)
    fetch_dataset("tiny_imagenet", root, download=False)
    return fake, root


def mean_colour(image: torch.Tensor) -> torch.Tensor:
    return image.double().mean(dim=(1, 2))


def test_train_split_labels_follow_sorted_wnids(fetched):
    fake, root = fetched
    train = load_dataset("tiny_imagenet", root, "train")
    assert train.classes == fake.classes  # sorted, not wnids.txt order
    assert train.labels.tolist() == fake.train_labels
    assert train.images.shape == (len(fake.train_labels), 3, 64, 64)
    assert train.images.dtype == torch.uint8


def test_flat_val_is_labelled_from_val_annotations(fetched):
    fake, root = fetched
    test = load_dataset("tiny_imagenet", root, "test")
    assert test.labels.tolist() == fake.val_labels
    assert len(set(test.labels.tolist())) == 3  # not one label for the whole folder
    for image, colour in zip(test.images, fake.val_colours, strict=True):
        if colour is not None:  # the pixels belong to the annotated class
            assert torch.allclose(mean_colour(image), torch.tensor(colour).double(), atol=4)


def test_greyscale_image_becomes_rgb(fetched):
    fake, root = fetched
    grey = load_dataset("tiny_imagenet", root, "test").images[fake.grey_val_row]
    assert grey.shape == (3, 64, 64)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_loaders_flip_only(fetched):
    _, root = fetched
    train, test, info = build_loaders("tiny_imagenet", root, batch_size=4, device="cpu")
    x, y, index = next(iter(train))
    assert x.shape == (4, 3, 64, 64) and info.augment.pad == 0 and not info.augment.random_crop
    assert torch.equal(y, train.labels[index])
    assert train.num_samples == 6 and test.num_samples == 6


def test_member_escaping_the_archive_is_rejected(tmp_path, monkeypatch):
    fake = write_tiny_imagenet_zip(
        tmp_path / "tiny-imagenet-200.zip", extra_members=(("../outside.txt", b"x"),)
    )
    root = tmp_path / "data"
    place(fake, root, monkeypatch)
    with pytest.raises(UnsafeArchiveError, match=r"outside\.txt"):
        fetch_dataset("tiny_imagenet", root, download=False)
    assert not (root / "tiny_imagenet" / "manifest.json").exists()


def test_val_image_without_annotation_is_an_error(tmp_path, monkeypatch):
    fake = write_tiny_imagenet_zip(tmp_path / "tiny-imagenet-200.zip", drop_annotation=True)
    root = tmp_path / "data"
    place(fake, root, monkeypatch)
    with pytest.raises(InvalidDatasetError, match=r"unlabelled: \['val_0.JPEG'\]"):
        fetch_dataset("tiny_imagenet", root, download=False)
