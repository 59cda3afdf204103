"""The sensitivity study (Fig. 4): Optuna over beta3 and the Gumbel temperature schedule.

Modules, one job each (import them directly; this package import stays light so validating
params.yaml does not load Optuna):
- hyperparams: the tuned values and how they become a DistillConfig for a trial;
- plans: search ranges or Fig. 4 grid points, and the sampler of the next trial;
- samplers / pruners: Optuna components by name;
- storage / locks: storage URLs (sqlite, journal file, PostgreSQL, MySQL) and the
  cross-process lock that makes trial claims atomic;
- study: create or continue a study (fingerprint of the objective's settings);
- budget: claim trials so that N workers end with exactly n_trials; dead workers' trials;
- heartbeat / runner: run claimed trials (pruning, failures recorded, not fatal);
- results / plots / report: rows, importances, Fig. 4 PNGs and the markdown report.
"""

from sakd.tuning.errors import TuningError
from sakd.tuning.pruners import list_pruners
from sakd.tuning.samplers import list_samplers

__all__ = ["TuningError", "list_pruners", "list_samplers"]
