"""Count host syncs: calls that copy a tensor's value to Python (for the no-sync tests)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SYNCING_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")
"""Tensor methods that make the host wait for the device's value."""


@contextmanager
def count_host_syncs() -> Iterator[Counter]:
    """Counts calls of SYNCING_METHODS (on any tensor) inside the block; on CUDA, torch's sync
    debug mode also turns any device synchronisation into an error."""
    calls: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in SYNCING_METHODS}

    def counting(name, original):
        def method(self, *args, **kwargs):
            calls[name] += 1
            return original(self, *args, **kwargs)
        return method

    for name, original in originals.items():
        setattr(torch.Tensor, name, counting(name, original))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield calls
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
