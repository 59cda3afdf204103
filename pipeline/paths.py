"""Where every stage reads and writes (DESIGN.md "Outputs"); one place, so stages agree."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder up from `start` holding params.yaml or dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists() or (folder / "dvc.yaml").exists():
            return folder
    return here


def store_root(root: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the shared stores live (mlflow.db, mlruns/, optuna.db): the repository DVC came from.

    A queued or `--temp` experiment runs in a copy under .dvc/tmp that is deleted afterwards;
    DVC exports the original repository as $DVC_ROOT to every stage command, so its runs land
    in the one store the user's `mlflow ui` reads. Outside DVC: the project root.
    """
    env = os.environ if env is None else env
    dvc_root = env.get("DVC_ROOT")
    if dvc_root and Path(dvc_root).is_dir():
        return Path(dvc_root).resolve()
    return Path(root).resolve()


def dvc_experiment_tags(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """MLflow tags naming the DVC experiment a run belongs to (empty outside `dvc exp run`),
    so `dvc exp show` and the MLflow UI lead to each other."""
    env = os.environ if env is None else env
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}
    return {tag: env[var] for var, tag in names.items() if env.get(var)}


def cell_key(teacher: str, student: str, distiller: str, strategy: str) -> str:
    """`<teacher>-<student>/<distiller>-<strategy>`: one distill stage, all its seeds."""
    return f"{teacher}-{student}/{distiller}-{strategy}"


def run_key(teacher: str, student: str, distiller: str, strategy: str, seed: int) -> str:
    """`<teacher>-<student>/<distiller>-<strategy>/seed<k>`: one distillation run, in the
    folder of its stage (a DVC output holds all seeds of a stage)."""
    return f"{cell_key(teacher, student, distiller, strategy)}/seed{seed}"


@dataclass(frozen=True)
class Layout:
    root: Path
    dataset: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    def pretrained(self, arch: str) -> Path:
        return self.root / "models" / "teachers" / self.dataset / f"{arch}.pt"

    def student(self, key: str) -> Path:
        return self.root / "models" / "students" / self.dataset / f"{key}.pt"

    def pretrain_metrics(self, arch: str) -> Path:
        return self.root / "metrics" / "pretrain" / self.dataset / f"{arch}.json"

    def pretrain_plots(self, arch: str) -> Path:
        return self.root / "plots" / "pretrain" / self.dataset / f"{arch}.csv"

    def distill_metrics(self, key: str) -> Path:
        return self.root / "metrics" / "distill" / self.dataset / f"{key}.json"

    def distill_plots(self, key: str) -> Path:
        """Folder with curves.csv (accuracy, losses) and route.csv (per-spot p_distill)."""
        return self.root / "plots" / "distill" / self.dataset / key

    def evaluate_metrics(self) -> Path:
        return self.root / "metrics" / "evaluate" / f"{self.dataset}.json"

    def resume(self, output: Path) -> Path:
        """The resume state of a checkpoint output: outside DVC's outputs (DVC deletes an
        output before it reruns a stage), so a killed run continues and the run-cache works."""
        return self.root / ".sakd" / "resume" / output.relative_to(self.root)

    @property
    def summary_metrics(self) -> Path:
        return self.root / "metrics" / "summary.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
