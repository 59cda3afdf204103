"""The timed object: a distillation step with fresh, seeded models on a synthetic batch."""

from __future__ import annotations

import torch

from benchmarks.config import BenchConfig
from sakd.build import build_distill_step
from sakd.config import DistillConfig
from sakd.data.device_loader import DeviceLoader
from sakd.data.info import AugmentSpec
from sakd.distillers import create_distiller, distiller_options
from sakd.models import create_model
from sakd.train.capture import CapturedStep
from sakd.train.distill_step import DistillStep
from sakd.train.runtime import autocast_enabled, place_model

CIFAR_MEAN = (0.5071, 0.4867, 0.4408)  # any fixed statistics do: the images are random
CIFAR_STD = (0.2675, 0.2565, 0.2761)


def synthetic_loader(cfg: BenchConfig, device: torch.device, images: int) -> DeviceLoader:
    """Random uint8 images in the on-device loader with CIFAR's augmentation (pad, crop, flip)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    n = max(images, cfg.batch_size)
    shape = (n, 3, cfg.input_size, cfg.input_size)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, cfg.num_classes, (n,), generator=generator)
    labels[: cfg.num_classes] = torch.arange(min(n, cfg.num_classes))  # every class present
    return DeviceLoader(
        pixels, labels, cfg.batch_size, device, train=True,
        augment=AugmentSpec(pad=max(1, cfg.input_size // 8), random_crop=True, flip=True),
        mean=CIFAR_MEAN, std=CIFAR_STD, seed=cfg.seed, drop_last=True,
        channels_last=cfg.channels_last,
    )


def build_step(
    cfg: BenchConfig, strategy: str, device: torch.device, loader: DeviceLoader
) -> DistillStep | CapturedStep:
    """A training step with fresh models (seeded: every strategy starts from the same weights).

    Distillers with a preparation phase (FT's paraphraser pretraining) are not prepared: it
    runs once before training and does not change the cost of a step.
    """
    torch.manual_seed(cfg.seed)
    place = {"channels_last": cfg.channels_last, "compile": cfg.compile}
    teacher = place_model(create_model(cfg.teacher, cfg.num_classes), device, **place)
    student = place_model(create_model(cfg.student, cfg.num_classes), device, **place)
    example_x = first_batch(loader)[0][:2]
    with torch.no_grad():
        feats_s = student.eval()(example_x, return_features=True)[0]
        feats_t = teacher.eval()(example_x, return_features=True)[0]
    student.train()
    available = {"labels": loader.labels.cpu(), "num_samples": loader.num_samples}
    options = {k: available[k] for k in distiller_options(cfg.distiller) if k in available}
    distiller = create_distiller(cfg.distiller, feats_s, feats_t, **options)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    step = build_distill_step(
        student, teacher, distiller, strategy, example_x, DistillConfig(), generator=generator,
        autocast=autocast_enabled(cfg.autocast, device), channels_last=cfg.channels_last,
        fold_batchnorm=cfg.fold_batchnorm, fused_optimizer=cfg.fused_optimizer,
    )
    return CapturedStep(step) if cfg.capture else step


def first_batch(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first batch of epoch 0, leaving the loader's epoch counter as it was."""
    epoch = loader.epoch
    loader.set_epoch(0)
    batch = next(iter(loader))
    loader.set_epoch(epoch)
    return batch
