"""Plain supervised training step (teachers, and students trained alone: the paper's S row)."""

from __future__ import annotations

import torch
from torch import nn


class SupervisedStep:
    """CE on the model's logits, one SGD step. Returns detached tensors (no host sync)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, autocast: bool = False):
        self.model = model
        self.optimizer = optimizer
        self.autocast = autocast

    def __call__(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None):
        self.model.train()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {
            "loss": loss.detach(),
            "correct": (logits.detach().argmax(1) == y).sum(),
        }
