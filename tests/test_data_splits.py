"""The validation split: carved from the training data, stratified, fixed by its seed, and
disjoint from what the model trains on; the test split is untouched."""

from __future__ import annotations

import pytest
import torch

from sakd.data import DatasetOptionError, build_loaders, build_split_loaders, fetch_dataset
from sakd.data.splits import validation_rows


def test_validation_rows_are_stratified_disjoint_and_fixed_by_the_seed():
    labels = torch.arange(10).repeat_interleave(20)  # 10 classes x 20 images
    train, val = validation_rows(labels, 0.2, seed=3)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert len(train) + len(val) == 200
    assert torch.bincount(labels[val]).tolist() == [4] * 10  # every class held out equally
    again = validation_rows(labels, 0.2, seed=3)[1]
    other = validation_rows(labels, 0.2, seed=4)[1]
    assert torch.equal(val, again) and not torch.equal(val, other)


def test_validation_rows_reject_bad_fractions_and_singleton_classes():
    with pytest.raises(DatasetOptionError, match="val_fraction"):
        validation_rows(torch.zeros(10, dtype=torch.long), 1.0, seed=0)
    with pytest.raises(DatasetOptionError, match=">= 2 training images"):
        validation_rows(torch.tensor([0, 0, 1]), 0.5, seed=0)


def test_split_loaders_hold_val_out_of_train_and_keep_the_official_test(tmp_path):
    fetch_dataset("digits", tmp_path)
    full_train, full_test, _ = build_loaders("digits", tmp_path, 64, "cpu")
    split = build_split_loaders("digits", tmp_path, 64, "cpu", seed=5, val_fraction=0.2,
                                val_seed=0)
    assert split.train.num_samples + split.val.num_samples == full_train.num_samples
    assert split.test.num_samples == full_test.num_samples == 450
    assert torch.equal(split.test.labels, full_test.labels)
    assert round(split.val.num_samples / full_train.num_samples, 2) == 0.2
    # the training seed shuffles batches; it does not move images between train and val
    other = build_split_loaders("digits", tmp_path, 64, "cpu", seed=9, val_fraction=0.2,
                                val_seed=0)
    assert torch.equal(split.val.labels, other.val.labels)
    assert not split.val.train  # validation is evaluated without augmentation
