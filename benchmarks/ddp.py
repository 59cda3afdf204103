"""Samples/s of 1 and N data-parallel processes for pretrain and spot-adaptive distillation.

    python -m benchmarks.ddp --nproc 1 --nproc 2 [--epochs 3] [--json ddp.json]

Runs the real stages in a temp project on the embedded digits data (resnet20 teacher,
resnet20 -> resnet8 with AT, adaptive), N > 1 through `torchrun --standalone --nproc_per_node=N
--no-python sakd ...`, and reads each epoch's wall time from the checkpoint's history. Reported:
training samples / median epoch time over the epochs after the first (an epoch includes the
test-split evaluation, which every rank runs whole). Not a timed test: numbers depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TEACHER, STUDENT, DISTILLER = "resnet20", "resnet8", "at"


def _project(root: Path, epochs: int, nproc: int) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["runs"].update(pretrain=[TEACHER, STUDENT],
                       pairs=[{"teacher": TEACHER, "student": STUDENT}],
                       distillers=[DISTILLER], strategies=["adaptive"], seeds=[0])
    for section in ("pretrain", "distill"):
        raw[section].update(epochs=epochs, milestones=[])
    raw["distill"]["decision_grid"] = 0
    raw["runtime"].update(device="cpu", nproc=1)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return raw


def _launch(nproc: int, args: list[str], root: Path) -> None:
    prefix = [] if nproc == 1 else ["torchrun", "--standalone", f"--nproc_per_node={nproc}",
                                    "--no-python"]
    subprocess.run([*prefix, "sakd", *args, "--quiet"], cwd=root,
                   check=True, capture_output=True)


def _samples_per_s(checkpoint: Path, samples: int) -> float:
    history = torch.load(checkpoint, weights_only=True)["history"]
    times = [h["epoch_time_s"] for h in history[1:]] or [history[0]["epoch_time_s"]]
    return samples / statistics.median(times)


def bench(nprocs: list[int], epochs: int) -> list[dict]:
    rows = []
    for nproc in nprocs:
        with tempfile.TemporaryDirectory(prefix="sakd-ddp-bench-") as tmp:
            root = Path(tmp)
            _project(root, epochs, nproc)
            subprocess.run(["sakd", "fetch", "digits"], cwd=root,
                           check=True, capture_output=True)
            _launch(nproc, ["pretrain", "--arch", TEACHER], root)
            _launch(nproc, ["distill", "--teacher", TEACHER, "--student", STUDENT,
                            "--distiller", DISTILLER, "--strategy", "adaptive"], root)
            models = root / "models"
            samples = int(torch.load(root / "data" / "digits" / "train.pt",
                                     weights_only=True)["labels"].numel())
            rows.append({
                "nproc": nproc,
                "pretrain_samples_per_s": _samples_per_s(
                    models / "teachers" / "digits" / f"{TEACHER}.pt", samples),
                "adaptive_samples_per_s": _samples_per_s(next(models.rglob("*adaptive*.pt")),
                                                         samples),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, action="append", help="repeatable; default 1 2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = bench(args.nproc or [1, 2], args.epochs)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| processes | pretrain samples/s | adaptive distill samples/s |\n|---:|---:|---:|")
    for r in rows:
        print(f"| {r['nproc']} | {r['pretrain_samples_per_s']:.0f} | "
              f"{r['adaptive_samples_per_s']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
