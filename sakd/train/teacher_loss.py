"""What a trainable teacher learns from (Table VIII; `distill.teacher_loss`).

- own_ce (default): the teacher learns from its own CE only; every distillation loss treats it
  as a constant target, so the student never pulls the teacher towards itself.
- all: the authors' `train_both.py`. Nothing on the teacher side is detached: KD and the
  distiller losses back-propagate into the teacher as well (mutual learning), and the CE terms
  are weighted gamma * (CE_student + CE_teacher).
A frozen teacher has no gradient to receive, so both modes are the same there.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from sakd.distillers.target import teacher_gradients
from sakd.registry import Registry

TEACHER_TRAINABLE: dict[str, bool] = {"frozen": False, "scratch": True, "pretrained": True}
"""Teacher modes of Table VIII -> whether the teacher is trained with the student."""


@dataclass(frozen=True)
class TeacherLoss:
    """How the student's loss couples to a trainable teacher."""

    mutual: bool  # KD + distiller losses also train the teacher
    gamma_weighted_ce: bool  # CE terms weighted gamma * (CE_s + CE_t)

    def scope(self, teacher_trainable: bool) -> AbstractContextManager:
        """The context the distillation losses are computed in (teacher gradients or not)."""
        return teacher_gradients(self.mutual and teacher_trainable)

    def ce_weight(self, gamma: float) -> float:
        """The factor of both CE terms."""
        return gamma if self.gamma_weighted_ce else 1.0


TEACHER_LOSSES: Registry[TeacherLoss] = Registry("teacher loss")
TEACHER_LOSSES.register("own_ce")(lambda: TeacherLoss(mutual=False, gamma_weighted_ce=False))
TEACHER_LOSSES.register("all")(lambda: TeacherLoss(mutual=True, gamma_weighted_ce=True))


def list_teacher_losses() -> list[str]:
    """What distill.teacher_loss accepts."""
    return TEACHER_LOSSES.names()


def create_teacher_loss(name: str) -> TeacherLoss:
    """A teacher loss by name (UnknownNameError lists the valid ones)."""
    return TEACHER_LOSSES.create(name)
