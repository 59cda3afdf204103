"""Top-1 / top-5 accuracy on a loader, with one host sync at the end."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, autocast: bool = False) -> dict[str, float]:
    """Accuracy in percent and mean cross-entropy of `model` over `batches` of (x, y, ...)."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = loss_sum = None
    count = 0
    try:
        for x, y, *_ in batches:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(x)
            logits = logits.float()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hit = top.eq(y[:, None])
            c1, c5 = hit[:, 0].sum(), hit.any(dim=1).sum()
            loss = nn.functional.cross_entropy(logits, y, reduction="sum")
            correct1 = c1 if correct1 is None else correct1 + c1
            correct5 = c5 if correct5 is None else correct5 + c5
            loss_sum = loss if loss_sum is None else loss_sum + loss
            count += y.shape[0]
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    c1, c5, loss = torch.stack([correct1.float(), correct5.float(), loss_sum.float()]).tolist()
    return {"top1": 100.0 * c1 / count, "top5": 100.0 * c5 / count, "loss": loss / count}
