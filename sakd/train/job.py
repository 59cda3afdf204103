"""The one object a run is, from the builder to the epoch loop.

The builders (sakd.build for distillation, sakd.build_pretrain for supervised training) fill
what they assemble: the step, the loaders, the modules and optimisers, the checkpoint's
metadata. The caller adds only what it owns (with `dataclasses.replace`): the checkpoint path
and the config hash that says which checkpoint may be resumed (the pipeline), the tracking
record, progress bars, and the tuner's pruning hook. No container copies another's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from sakd.data import SplitLoaders

Stats = dict[str, torch.Tensor]


class EpochLoader(Protocol):
    """A loader that yields (x, y, index) batches for a given epoch (seeded per epoch)."""

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self): ...

    def __len__(self) -> int: ...


@dataclass
class TrainingJob:
    """Everything the loop (sakd.train.loop.fit) runs, and what the caller's outputs read."""

    step: Callable[..., Stats]
    train_loader: EpochLoader
    evaluate: Callable[[], dict[str, float]]  # the validation split, after every epoch
    epochs: int
    modules: Mapping[str, nn.Module]  # what the checkpoint holds (name -> module)
    optimizers: Mapping[str, torch.optim.Optimizer]
    schedulers: Mapping[str, Any]
    checkpoint_path: Path | None = None  # the caller's; `fit` refuses to run without one
    config_hash: str = ""  # the caller's; a checkpoint of another hash is not resumed
    metadata: dict[str, Any] = field(default_factory=dict)  # stored in the checkpoint as-is
    on_epoch_start: Callable[[int], dict[str, float]] | None = None  # returns extra metrics (tau)
    summarize: Callable[[dict[str, torch.Tensor]], dict[str, float]] | None = None
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None  # after the checkpoint
    progress: bool = True
    test: Callable[[], dict[str, float]] | None = None  # the test split, once after the last epoch
    # what the builder made around the loop's parts (decision grids, the logged model)
    model: nn.Module | None = None  # the network being trained (the student)
    data: SplitLoaders | None = None  # train / val / test loaders and the dataset's info
    # the tracking run's record (tags, params), the caller's
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def check_ready(self) -> None:
        """Fail before any epoch when the caller left out what the loop cannot guess."""
        if self.checkpoint_path is None or not self.config_hash:
            raise ValueError("a TrainingJob needs checkpoint_path and config_hash before fit "
                             "(the caller's: where to resume from, and which state may be)")
