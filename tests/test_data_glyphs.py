"""The generated `glyphs` benchmark: deterministic bytes, the manifest's hash and statistics, and
the loader contract every in-memory dataset keeps (val split, shards, augmentation, normalisation).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sakd.data import DatasetOptionError, build_split_loaders, fetch_dataset, load_dataset
from sakd.data.glyph_render import CHARACTERS, glyph_masks
from sakd.data.glyphs import channel_stats, content_sha256, generate_split

SMALL = {"train_per_class": 6, "test_per_class": 2, "generation_seed": 0}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    root = tmp_path_factory.mktemp("glyphs")
    fetch_dataset("glyphs", root, **SMALL)
    return root


def test_every_character_renders_a_visible_glyph_in_every_font():
    masks = glyph_masks()
    coverage = masks.sum(axis=(2, 3))
    assert masks.shape[1] == len(CHARACTERS) and (coverage > 20).all()
    # o and O differ in size, not only in shape: the baseline layout keeps case apart
    o, big_o = CHARACTERS.index("o"), CHARACTERS.index("O")
    assert (coverage[:, big_o] > coverage[:, o]).all()


def test_generation_is_deterministic_and_seeded():
    a = generate_split("train", 3, seed=0)
    b = generate_split("train", 3, seed=0)
    c = generate_split("train", 3, seed=1)
    assert content_sha256(*a) == content_sha256(*b)
    assert content_sha256(*a) != content_sha256(*c)
    images, labels = a
    assert images.dtype == np.uint8 and images.shape == (3 * len(CHARACTERS), 3, 16, 16)
    assert np.array_equal(np.bincount(labels), np.full(len(CHARACTERS), 3))


def test_the_same_bytes_in_a_fresh_process():
    """What a clean clone does: a new interpreter (no cached glyph masks) gives the same hash."""
    code = ("from sakd.data.glyphs import generate_split, content_sha256;"
            "print(content_sha256(*generate_split('test', 2, 0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == content_sha256(*generate_split("test", 2, 0))


def test_test_split_does_not_depend_on_the_training_size(fetched, tmp_path):
    """Train and test come from separate streams: more training images leave the test set as
    it was, so results at two training sizes are read on the same test images."""
    fetch_dataset("glyphs", tmp_path, **{**SMALL, "train_per_class": 3})
    small = load_dataset("glyphs", tmp_path, "test", **{**SMALL, "train_per_class": 3})
    default = load_dataset("glyphs", fetched, "test", **SMALL)
    assert torch.equal(small.images, default.images)
    assert len(load_dataset("glyphs", tmp_path, "train", **{**SMALL, "train_per_class": 3})) == (
        3 * len(CHARACTERS))


def test_manifest_records_hash_statistics_and_versions(fetched):
    manifest = json.loads((fetched / "glyphs" / "manifest.json").read_text())
    train = load_dataset("glyphs", fetched, "train", **SMALL)
    test = load_dataset("glyphs", fetched, "test", **SMALL)
    assert manifest["sha256"]["train"] == content_sha256(train.images.numpy(),
                                                         train.labels.numpy())
    assert manifest["sha256"]["test"] == content_sha256(test.images.numpy(), test.labels.numpy())
    assert manifest["normalisation"] == channel_stats(train.images.numpy())
    assert {"numpy", "pillow", "freetype", "matplotlib"} <= manifest["versions"].keys()
    assert len(train) == 6 * len(CHARACTERS) and len(test) == 2 * len(CHARACTERS)
    assert train.classes[CHARACTERS.index("o")] == "o_lower"


def test_fetch_twice_in_two_folders_gives_identical_data(fetched, tmp_path):
    fetch_dataset("glyphs", tmp_path, **SMALL)
    for name in ("train.pt", "test.pt"):
        a = torch.load(fetched / "glyphs" / name, weights_only=True)
        b = torch.load(tmp_path / "glyphs" / name, weights_only=True)
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])


def test_loaders_normalise_with_the_recorded_train_statistics(fetched):
    split = build_split_loaders("glyphs", fetched, 64, "cpu", 0, val_fraction=0.5, val_seed=0,
                                augment={"pad": 0, "random_crop": False}, **SMALL)
    stats = json.loads((fetched / "glyphs" / "manifest.json").read_text())["normalisation"]
    assert split.info.mean == tuple(stats["mean"]) and split.info.std == tuple(stats["std"])
    xs = torch.cat([x for x, _, _ in split.train] + [x for x, _, _ in split.val])
    assert xs.shape[1:] == (3, 16, 16)
    assert xs.mean(dim=(0, 2, 3)).abs().max() < 0.05  # train + val = the whole train split
    assert (xs.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def test_validation_split_is_stratified_and_disjoint(fetched):
    split = build_split_loaders("glyphs", fetched, 32, "cpu", 0, val_fraction=0.5, val_seed=0,
                                **SMALL)
    train_y = torch.cat([y for _, y, _ in split.train])
    val_y = torch.cat([y for _, y, _ in split.val])
    assert len(train_y) + len(val_y) == 6 * len(CHARACTERS)
    assert torch.equal(torch.bincount(val_y), torch.full((len(CHARACTERS),), 3))


def test_data_parallel_shards_split_every_global_batch(fetched):
    shards = [build_split_loaders("glyphs", fetched, 32, "cpu", 0, val_fraction=0.5,
                                  rank=r, world_size=2, **SMALL).train for r in (0, 1)]
    rows = [torch.cat([i for _, _, i in s]) for s in shards]
    assert not set(rows[0].tolist()) & set(rows[1].tolist())
    assert len(rows[0]) == len(rows[1])


def test_training_batches_are_augmented_and_evaluation_batches_are_not(fetched):
    common = dict(val_fraction=0.5, **SMALL)
    plain = build_split_loaders("glyphs", fetched, 1000, "cpu", 0,
                                augment={"pad": 0, "random_crop": False}, **common)
    augmented = build_split_loaders("glyphs", fetched, 1000, "cpu", 0, **common)
    x_plain, _, rows_plain = next(iter(plain.train))
    x_aug, _, rows_aug = next(iter(augmented.train))
    by_row = dict(zip(rows_plain.tolist(), x_plain, strict=True))
    reference = torch.stack([by_row[r] for r in rows_aug.tolist()])
    shifted = (x_aug - reference).abs().flatten(1).amax(1) > 1e-6
    assert 0.5 < shifted.float().mean() < 1.0  # most crops move the image; (0, 0) offsets do not
    v1, v2 = next(iter(augmented.val))[0], next(iter(augmented.val))[0]
    assert torch.equal(v1, v2)


def test_bad_generation_options_are_refused_by_name(tmp_path):
    with pytest.raises(DatasetOptionError, match="train_per_class"):
        fetch_dataset("glyphs", tmp_path, train_per_class=1)
    with pytest.raises(DatasetOptionError, match="unknown option"):
        fetch_dataset("glyphs", tmp_path, colour=True)
