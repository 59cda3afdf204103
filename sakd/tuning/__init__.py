"""The sensitivity study (Fig. 4): Optuna over beta3 and the Gumbel temperature schedule.

Optuna samples, prunes, stores and plots; these modules hold only what it lacks (each
docstring says which guarantee). Import them directly; this package import stays light so
validating params.yaml does not load Optuna:
- space: the tuned values from params.yaml, search or Fig. 4 grid, per-trial seeded samplers;
- storage: storage URLs, opening them, and the lock that makes trial claims atomic;
- study: one `sakd tune` job, the study's fingerprint, its MLflow parent run;
- workers: the exact trial budget over N processes/machines, heartbeats, failures recorded;
- objective / baseline: a trial's training; the `always` baseline over seeds (noise band);
- results / report / plots: rows, the stage's files as content, the markdown, Fig. 4.
"""


class TuningError(Exception):
    """Bad input a user can fix: a storage that cannot be opened, a study that does not match
    the config. The CLI reports it as a user error (one line, exit 2); the study is untouched.
    """


def list_pruners() -> list[str]:
    from sakd.tuning.space import PRUNERS

    return sorted(PRUNERS)


def list_samplers() -> list[str]:
    from sakd.tuning.space import SAMPLERS

    return sorted(SAMPLERS)
