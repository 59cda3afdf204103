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


DIGITS_LIKE = torch.arange(10).repeat_interleave(135)  # 10 classes x 135 training images


@pytest.mark.parametrize("fraction, words", [
    (0.9995, "class 0 0/135"),  # asks every image for validation: 0 left to train on
    (0.0001, "class 0 135/0"),  # asks for no validation image at all
])
def test_a_fraction_that_empties_a_part_of_a_class_is_refused_naming_the_counts(fraction, words):
    with pytest.raises(DatasetOptionError, match="val_fraction") as err:
        validation_rows(DIGITS_LIKE, fraction, seed=0)
    message = str(err.value)
    assert words in message and "and 5 more" in message
    assert "between 0.0074 and 0.9852" in message and "\n" not in message


def test_a_small_but_possible_split_is_used_with_a_warning_naming_the_counts(caplog):
    _train, val = validation_rows(DIGITS_LIKE, 0.02, seed=0)  # 3 validation images per class
    assert torch.bincount(DIGITS_LIKE[val]).tolist() == [3] * 10
    assert "small split for class 0 132/3" in caplog.text
    caplog.clear()
    validation_rows(DIGITS_LIKE, 0.2, seed=0)  # 27 per class: nothing to say
    assert caplog.text == ""


def test_two_images_per_class_still_split_one_and_one_with_a_warning(caplog):
    train, val = validation_rows(torch.tensor([0, 0, 1, 1]), 0.1, seed=0)  # no fraction helps
    assert len(train) == len(val) == 2 and "class 0 1/1" in caplog.text


def test_the_cli_refuses_an_extreme_val_fraction_with_exit_2(tmp_path, default_params,
                                                           monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli import app

    default_params["data"].update(dataset="digits", val_fraction=0.9995)
    default_params["runtime"]["device"] = "cpu"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params))
    fetch_dataset("digits", tmp_path / "data")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    arch = default_params["runs"]["pretrain"][-1]
    result = CliRunner().invoke(app, ["pretrain", "--arch", arch, "-q", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "error: data.val_fraction 0.9995 leaves class 0 " in result.output
    assert "Traceback" not in result.output
