"""The dataset registry: names, per-dataset facts and declarative augmentation, clear errors."""

from __future__ import annotations

import pytest

from sakd.data import (
    AugmentSpec,
    DatasetOptionError,
    fetch_dataset,
    get_dataset_info,
    list_datasets,
    load_dataset,
)
from sakd.registry import UnknownNameError


def test_registered_names():
    assert list_datasets() == ["cifar100", "digits", "glyphs", "imagenet", "tiny_imagenet"]


@pytest.mark.parametrize("call", [get_dataset_info, lambda n: fetch_dataset(n, "/nonexistent")])
def test_unknown_name_lists_the_valid_ones(call):
    with pytest.raises(UnknownNameError, match="cifar100, digits, glyphs, imagenet, tiny_imagenet"):
        call("cifar10")


def test_paper_statistics_and_augmentation():
    cifar, tiny, digits = (get_dataset_info(n) for n in ("cifar100", "tiny_imagenet", "digits"))
    assert (cifar.num_classes, cifar.input_size) == (100, 32)
    assert cifar.mean == (0.5071, 0.4867, 0.4408) and cifar.std == (0.2675, 0.2565, 0.2761)
    assert cifar.augment == AugmentSpec(pad=4, random_crop=True, flip=True)
    assert (tiny.num_classes, tiny.input_size) == (200, 64)
    assert tiny.mean == (0.4802, 0.4481, 0.3975) and tiny.std == (0.2302, 0.2265, 0.2262)
    assert tiny.augment == AugmentSpec(flip=True)
    assert digits.augment == AugmentSpec(pad=1, random_crop=True, flip=False)
    imagenet = get_dataset_info("imagenet")
    assert not imagenet.in_memory and imagenet.input_size == 224
    assert imagenet.augment.random_resized_crop and imagenet.augment.eval_resize == 256
    assert all(get_dataset_info(n).channels == 3 for n in list_datasets())


def test_unknown_split_and_options(tmp_path):
    with pytest.raises(DatasetOptionError, match="valid: train, test"):
        load_dataset("digits", tmp_path, "val")
    with pytest.raises(DatasetOptionError, match="valid: download"):
        fetch_dataset("cifar100", tmp_path, url="http://example.org")


def test_augment_overrides_are_checked():
    spec = get_dataset_info("digits").augment
    assert spec.with_overrides({"pad": 3}).pad == 3
    with pytest.raises(DatasetOptionError, match="valid: pad"):
        spec.with_overrides({"padding": 3})
    with pytest.raises(DatasetOptionError, match="random_crop"):
        AugmentSpec(pad=2)
