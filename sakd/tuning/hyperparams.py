"""The hyper-parameters the sensitivity study varies, and how a trial's values become a
DistillConfig: beta3 (Eq. 7) and the Gumbel temperature schedule (tau0, tau_min, shape).

Anything not varied keeps the distill section's value, so a trial differs from the configured
distillation only in the tuned values and its shorter length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sakd.config import DistillConfig, replace

Value = float | str

# name -> (read from a DistillConfig, write into one)
_FIELDS: dict[str, tuple[Callable[[DistillConfig], Value],
                         Callable[[DistillConfig, Value], DistillConfig]]] = {
    "beta3": (lambda c: c.beta3, lambda c, v: replace(c, beta3=float(v))),
    "tau0": (lambda c: c.tau.tau0, lambda c, v: replace(c, tau=replace(c.tau, tau0=float(v)))),
    "tau_min": (lambda c: c.tau.tau_min,
                lambda c, v: replace(c, tau=replace(c.tau, tau_min=float(v)))),
    "schedule": (lambda c: c.tau.schedule,
                 lambda c, v: replace(c, tau=replace(c.tau, schedule=str(v)))),
}
HYPERPARAMS: tuple[str, ...] = tuple(_FIELDS)
NUMERIC: tuple[str, ...] = ("beta3", "tau0", "tau_min")
LABELS = {"beta3": "β3 (routing-loss weight)", "tau0": "τ0 (initial Gumbel temperature)",
          "tau_min": "τ_min (final Gumbel temperature)", "schedule": "τ schedule"}


def base_values(cfg: DistillConfig) -> dict[str, Value]:
    """The distill section's value of every tuned hyper-parameter (Fig. 4's fixed point)."""
    return {name: get(cfg) for name, (get, _) in _FIELDS.items()}


def scale_milestones(milestones: list[int], from_epochs: int, to_epochs: int) -> list[int]:
    """LR decay epochs of a `from_epochs` run moved to the same fractions of a shorter run."""
    scaled = {round(m * to_epochs / from_epochs) for m in milestones}
    return sorted(m for m in scaled if 0 < m < to_epochs)


def trial_config(base: DistillConfig, values: Mapping[str, Value], epochs: int) -> DistillConfig:
    """`base` with a trial's values and length; raises ConfigError on an invalid schedule."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise KeyError(f"unknown hyper-parameters {unknown}; tuned: {', '.join(HYPERPARAMS)}")
    cfg = base
    for name, value in values.items():
        cfg = _FIELDS[name][1](cfg, value)
    cfg.tau.check()  # tau_min <= tau0, known schedule
    return replace(cfg, epochs=epochs,
                   milestones=scale_milestones(base.milestones, base.epochs, epochs))
