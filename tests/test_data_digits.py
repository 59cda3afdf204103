"""The embedded `digits` dataset: split, conversion, statistics, fetch/load life cycle."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sakd.data import (
    DatasetNotFetchedError,
    DatasetOptionError,
    build_loaders,
    fetch_dataset,
    get_dataset_info,
    load_dataset,
)
from sakd.data import digits as digits_module
from sakd.data.digits import digits_arrays, stratified_split


@pytest.fixture(scope="module")
def digit_labels() -> np.ndarray:
    return digits_arrays()[1]


def test_split_is_stratified_disjoint_and_complete(digit_labels):
    train, test = stratified_split(digit_labels, 0.25, seed=0)
    assert len(train) + len(test) == 1797
    assert not set(train) & set(test)
    assert len(test) == pytest.approx(0.25 * 1797, abs=10)
    for cls in range(10):
        n_cls = int((digit_labels == cls).sum())
        n_test = int((digit_labels[test] == cls).sum())
        assert abs(n_test - 0.25 * n_cls) <= 1  # every class split in the same proportion


def test_split_is_deterministic_per_seed(digit_labels):
    a = stratified_split(digit_labels, 0.25, seed=0)
    b = stratified_split(digit_labels, 0.25, seed=0)
    c = stratified_split(digit_labels, 0.25, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_fetch_then_load_gives_uint8_rgb_digits(tmp_path):
    folder = fetch_dataset("digits", tmp_path)
    assert folder == tmp_path / "digits" and (folder / "manifest.json").is_file()
    train = load_dataset("digits", tmp_path, "train")
    test = load_dataset("digits", tmp_path, "test")
    assert len(train) + len(test) == 1797
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 8, 8)
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == set(range(10))
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0  # 0..16 -> 0..255
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey replicated to 3 channels
    image, label = train[0]
    assert image.shape == (3, 8, 8) and label.dtype == torch.int64


def test_info_statistics_match_the_train_split(tmp_path):
    fetch_dataset("digits", tmp_path)
    pixels = load_dataset("digits", tmp_path, "train").images.double() / 255
    info = get_dataset_info("digits")
    assert info.mean[0] == pytest.approx(pixels.mean().item(), abs=1e-3)
    assert info.std[0] == pytest.approx(pixels.std().item(), abs=1e-3)
    assert info.num_classes == 10 and info.input_size == 8 and info.in_memory


def test_load_needs_no_scikit_learn(tmp_path, monkeypatch):
    fetch_dataset("digits", tmp_path)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert len(load_dataset("digits", tmp_path, "test")) > 0


def test_missing_data_error_says_how_to_fetch(tmp_path):
    with pytest.raises(DatasetNotFetchedError, match=r"sakd fetch digits.*dvc repro fetch"):
        load_dataset("digits", tmp_path, "train")


def test_fetch_is_idempotent_and_options_change_the_data(tmp_path, monkeypatch):
    fetch_dataset("digits", tmp_path)
    original = load_dataset("digits", tmp_path, "test").labels

    def fail():
        raise AssertionError("a complete fetch must not convert again")

    monkeypatch.setattr(digits_module, "digits_arrays", fail)
    fetch_dataset("digits", tmp_path)  # no-op
    monkeypatch.undo()
    fetch_dataset("digits", tmp_path, split_seed=5)
    with pytest.raises(DatasetNotFetchedError, match="options"):
        load_dataset("digits", tmp_path, "test")  # asks for seed 0, folder holds seed 5
    reseeded = load_dataset("digits", tmp_path, "test", split_seed=5).labels
    assert not torch.equal(original, reseeded)


def test_bad_option_values_are_rejected_without_touching_a_good_fetch(tmp_path):
    fetch_dataset("digits", tmp_path)
    with pytest.raises(DatasetOptionError, match="test_fraction"):
        fetch_dataset("digits", tmp_path, test_fraction=1.5)
    with pytest.raises(DatasetOptionError, match="split_seed"):
        load_dataset("digits", tmp_path, split_seed=-1)
    assert len(load_dataset("digits", tmp_path, "test")) == 450
    with pytest.raises(DatasetOptionError, match="valid: split_seed, test_fraction"):
        fetch_dataset("digits", tmp_path, download=True)


def test_build_loaders_for_digits(tmp_path):
    fetch_dataset("digits", tmp_path)
    train, test, info = build_loaders("digits", tmp_path, batch_size=100, device="cpu", seed=0)
    x, y, index = next(iter(train))
    assert x.shape == (100, 3, 8, 8) and y.shape == index.shape == (100,)
    assert train.num_samples + test.num_samples == 1797 and info.name == "digits"
    assert train.augment.pad == 1 and not train.augment.flip
    train2, _, _ = build_loaders("digits", tmp_path, 100, "cpu", augment={"pad": 2})
    assert train2.augment.pad == 2
