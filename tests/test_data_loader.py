"""DeviceLoader: on-device crop/flip/normalise is right, and epochs replay exactly under a seed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sakd.data import AugmentSpec, DeviceLoader
from sakd.data.augment import crop_and_flip

N, SIZE, PAD = 40, 5, 2
IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # x = image / 255 exactly


def make_images(n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    return images, torch.arange(n, dtype=torch.int64) % 7


def loader(train: bool = True, augment: AugmentSpec | None = None, **kw) -> DeviceLoader:
    images, labels = make_images()
    spec = augment or AugmentSpec(pad=PAD, random_crop=True, flip=True)
    args = {"batch_size": 8, "device": "cpu", "seed": 3, **IDENTITY, **kw}
    return DeviceLoader(images, labels, train=train, augment=spec, **args)


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255).to(torch.uint8)


def windows(image: torch.Tensor, pad: int, flip_allowed: bool) -> list[tuple[tuple, torch.Tensor]]:
    """Every (top, left, flipped) crop of the zero-padded image."""
    padded = F.pad(image, (pad, pad, pad, pad))
    out = []
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top : top + SIZE, left : left + SIZE]
            out.append(((top, left, False), crop))
            if flip_allowed:
                out.append(((top, left, True), crop.flip(-1)))
    return out


def matching_windows(sample: torch.Tensor, image: torch.Tensor, flip_allowed: bool) -> list:
    return [key for key, crop in windows(image, PAD, flip_allowed) if torch.equal(crop, sample)]


def test_crop_and_flip_equals_a_per_sample_reference():
    images, _ = make_images(6)
    padded = F.pad(images, (PAD,) * 4)
    rows = torch.tensor([5, 0, 3, 3])
    top, left = torch.tensor([0, 4, 2, 1]), torch.tensor([3, 0, 2, 4])
    flip = torch.tensor([True, False, True, False])
    out = crop_and_flip(padded, rows, top, left, flip, (SIZE, SIZE))
    for b in range(4):
        crop = padded[rows[b], :, top[b] : top[b] + SIZE, left[b] : left[b] + SIZE]
        assert torch.equal(out[b], crop.flip(-1) if flip[b] else crop)


def test_train_batches_are_padded_windows_of_their_rows_and_flips_happen():
    images, labels = make_images()
    seen = {"flipped": 0, "unflipped": 0, "offsets": set()}
    for x, y, index in loader():
        assert x.dtype == torch.float32 and y.dtype == index.dtype == torch.int64
        assert torch.equal(y, labels[index])
        for sample, row in zip(as_uint8(x), index.tolist(), strict=True):
            keys = matching_windows(sample, images[row], flip_allowed=True)
            assert keys, "batch image is not a crop of its padded source row"
            seen["flipped" if all(k[2] for k in keys) else "unflipped"] += 1
            seen["offsets"].add(keys[0][:2])
    assert seen["flipped"] > 5 and seen["unflipped"] > 5
    assert len(seen["offsets"]) > 5  # crops really move


def test_no_flip_spec_never_mirrors():
    images, _ = make_images()
    spec = AugmentSpec(pad=PAD, random_crop=True, flip=False)  # e.g. digits
    for x, _, index in loader(augment=spec):
        for sample, row in zip(as_uint8(x), index.tolist(), strict=True):
            assert matching_windows(sample, images[row], flip_allowed=False)


def test_flip_only_spec_mirrors_without_cropping():
    images, _ = make_images()
    spec = AugmentSpec(flip=True)  # tiny-ImageNet
    flipped = 0
    for x, _, index in loader(augment=spec):
        for sample, row in zip(as_uint8(x), index.tolist(), strict=True):
            assert torch.equal(sample, images[row]) or torch.equal(sample, images[row].flip(-1))
            flipped += int(torch.equal(sample, images[row].flip(-1)))
    assert 0 < flipped < N


def test_eval_batches_are_in_order_unaugmented_and_normalised():
    images, labels = make_images()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    test = loader(train=False, mean=mean, std=std)
    xs, ys, rows = zip(*test, strict=True)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    assert torch.equal(torch.cat(rows), torch.arange(N))
    assert torch.equal(torch.cat(ys), labels)
    torch.testing.assert_close(torch.cat(xs), expected)
    assert len(test) == len(xs) == 5


def epoch_rows(dl: DeviceLoader) -> torch.Tensor:
    return torch.cat([index for _, _, index in dl])


def test_same_seed_and_epoch_replay_the_same_batches():
    a, b = loader(), loader()
    a.set_epoch(4)
    b.set_epoch(4)
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


def test_epochs_differ_and_iteration_advances_the_epoch():
    dl = loader()
    first, second = epoch_rows(dl), epoch_rows(dl)  # epochs 0 and 1
    assert not torch.equal(first, second)
    resumed = loader()
    resumed.set_epoch(1)  # a run resumed at epoch 1 sees what the uninterrupted run saw
    assert torch.equal(epoch_rows(resumed), second)
    other_seed = loader(seed=4)
    assert not torch.equal(epoch_rows(other_seed), first)


def test_every_row_once_per_epoch_without_drop_last():
    dl = loader(batch_size=16)  # 40 rows: 16 + 16 + 8
    sizes = [len(index) for _, _, index in dl]
    assert sizes == [16, 16, 8] and len(dl) == 3
    assert sorted(epoch_rows(dl).tolist()) == list(range(N))


def test_drop_last_yields_only_full_batches():
    dl = loader(batch_size=16, drop_last=True)
    rows = [index for _, _, index in dl]
    assert len(dl) == len(rows) == 2 and all(len(r) == 16 for r in rows)
    assert len(set(torch.cat(rows).tolist())) == 32


def test_channels_last_option():
    x, _, _ = next(iter(loader(channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_rejects_non_uint8_images():
    images, labels = make_images()
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.float(), labels, 4, "cpu", True, AugmentSpec(), **IDENTITY)
