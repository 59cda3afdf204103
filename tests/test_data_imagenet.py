"""ImageNet from an existing ImageFolder tree: validation, recorded path, streamed loaders."""

from __future__ import annotations

import shutil

import pytest
import torch
from fakedata import write_image_folder

from sakd.data import (
    DatasetNotFetchedError,
    InvalidDatasetError,
    build_loaders,
    fetch_dataset,
    load_dataset,
)


def test_fetch_records_the_tree_and_load_finds_it(tmp_path):
    tree = write_image_folder(tmp_path / "ilsvrc")
    root = tmp_path / "data"
    assert fetch_dataset("imagenet", root, path=tree) == tree.resolve()
    train = load_dataset("imagenet", root, "train")  # no path: the recorded one
    image, label, index = train[3]
    assert train.classes == ["cat", "dog", "fox"] and len(train) == 6
    assert image.dtype == torch.uint8 and image.shape == (3, 224, 224)
    assert (label, index) == (train.targets[3], 3)


def test_missing_tree_says_how_to_fetch(tmp_path):
    with pytest.raises(DatasetNotFetchedError, match="sakd fetch imagenet --path"):
        load_dataset("imagenet", tmp_path, "train")


def test_class_lists_must_match(tmp_path):
    tree = write_image_folder(tmp_path / "t", val_classes=("cat", "dog"))
    with pytest.raises(InvalidDatasetError, match=r"only in train: \['fox'\]"):
        fetch_dataset("imagenet", tmp_path / "data", path=tree)


def test_empty_class_and_flat_val_are_errors(tmp_path):
    tree = write_image_folder(tmp_path / "t")
    for image in (tree / "val" / "dog").iterdir():
        image.unlink()
    with pytest.raises(InvalidDatasetError, match=r"val/dog holds no images"):
        fetch_dataset("imagenet", tmp_path / "data", path=tree)
    flat = write_image_folder(tmp_path / "flat")
    for folder in list((flat / "val").iterdir()):
        for image in folder.iterdir():
            image.rename(flat / "val" / image.name)
        shutil.rmtree(folder)
    with pytest.raises(InvalidDatasetError, match="flat"):
        fetch_dataset("imagenet", tmp_path / "data", path=flat)


def test_streamed_loaders_normalise_on_device_with_indices(tmp_path):
    tree = write_image_folder(tmp_path / "t")
    train, test, info = build_loaders(
        "imagenet", tmp_path / "data", batch_size=4, device="cpu", seed=1, num_workers=0, path=tree
    )
    assert info.num_classes == 3 and len(train) == 2 and test.num_samples == 6
    x, y, index = next(iter(train))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 224, 224)
    assert torch.equal(y, train.labels[index])
    xs, _, rows = zip(*test, strict=True)
    assert torch.equal(torch.cat(rows), torch.arange(6))  # eval keeps order
    raw = load_dataset("imagenet", tmp_path / "data", "test", path=tree)[0][0].float() / 255
    mean, std = torch.tensor(info.mean).view(3, 1, 1), torch.tensor(info.std).view(3, 1, 1)
    torch.testing.assert_close(xs[0][0], (raw - mean) / std)  # Resize 256 + CenterCrop 224
    again = build_loaders("imagenet", tmp_path / "d", 4, "cpu", seed=1, num_workers=0, path=tree)[0]
    assert torch.equal(next(iter(again))[2], index)  # same (seed, epoch): same order
