"""The sensitivity study (Fig. 4): Optuna over beta3 and the Gumbel temperature schedule.

Modules, one job each (import them directly; this package import stays light so validating
params.yaml does not load Optuna):
- hyperparams: the tuned values and how they become a DistillConfig for a trial;
- plans: search ranges or Fig. 4 grid points, and the sampler of the next trial;
- samplers / pruners: Optuna components by name;
- storage / locks: storage URLs (sqlite, journal file, PostgreSQL, MySQL) and the
  cross-process lock that makes trial claims atomic;
- study: create or continue a study (fingerprint of the objective's settings);
- job: one `sakd tune` invocation as picklable data (settings, storage URL, study name);
- budget: claim trials so that N workers end with exactly n_trials; dead workers' trials;
- heartbeat / runner: run claimed trials (pruning, failures recorded, not fatal);
- objective: a trial's training (the caller injects how a distillation run is built) and
  the `always` baseline, each of its seeds trained once per study (baseline);
- band: that baseline over seeds as Fig. 4's line and noise band (mean ± 1 sample sd);
- workers / parent_run: this process or N spawned ones; the study's MLflow parent run;
- results / plots / report / outputs: rows, importances, Fig. 4 PNGs, the markdown report
  and everything the stage writes, as content (the pipeline writes the files).
"""

from sakd.tuning.errors import TuningError
from sakd.tuning.pruners import list_pruners
from sakd.tuning.samplers import list_samplers

__all__ = ["TuningError", "list_pruners", "list_samplers"]
