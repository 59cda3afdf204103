"""The teacher side of every loss: a constant target, unless the teacher is co-trained.

Every loss reads the teacher's features through `teacher_target`, which detaches them, so no
distillation loss pushes gradient into the teacher (the paper's frozen teacher). The authors'
`train_both.py` (Table VIII, `distill.teacher_loss: all`) detaches nothing on the teacher side:
KD and the distiller losses train the teacher as well (mutual learning). The training step
turns that on for one forward with `with teacher_gradients():`, the way `torch.no_grad` scopes
autograd, so no loss function needs a flag of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_TEACHER_GRADIENTS: ContextVar[bool] = ContextVar("sakd_teacher_gradients", default=False)


def teacher_target(t: torch.Tensor) -> torch.Tensor:
    """`t` detached (the default), or `t` itself inside `teacher_gradients()`."""
    return t if _TEACHER_GRADIENTS.get() else t.detach()


@contextmanager
def teacher_gradients(enabled: bool = True) -> Iterator[None]:
    """Within this block, losses keep the gradient of the teacher side (`enabled=False`: no-op)."""
    token = _TEACHER_GRADIENTS.set(enabled)
    try:
        yield
    finally:
        _TEACHER_GRADIENTS.reset(token)
