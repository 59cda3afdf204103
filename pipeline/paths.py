"""Where every stage reads and writes (DESIGN.md "Outputs"); one place, so stages agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder up from `start` holding params.yaml or dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists() or (folder / "dvc.yaml").exists():
            return folder
    return here


def run_key(teacher: str, student: str, distiller: str, strategy: str, seed: int) -> str:
    """`<teacher>-<student>/<distiller>-<strategy>-seed<k>`: one distillation run."""
    return f"{teacher}-{student}/{distiller}-{strategy}-seed{seed}"


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

    @property
    def reports(self) -> Path:
        return self.root / "reports"
