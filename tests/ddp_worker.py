"""What each of the 2 gloo processes of tests/test_ddp_runs.py does (spawned, so importable).

Every rank joins the group the way `torchrun` would have it (the env variables), runs the real
stages, then a few raw steps whose losses and weights the test compares with one process.
Results go to <out>/rank<k>.pt (plain tensors and floats).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

STEPS = 3


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def supervised_steps(params, root: Path) -> dict:
    """STEPS pretraining steps on this rank's shares (DDP)."""
    from sakd.build_pretrain import build_supervised_run

    run = build_supervised_run(params, root / "data", torch.device("cpu"), "resnet8")
    losses = []
    for _, (x, y, _index) in zip(range(STEPS), run.train_loader, strict=False):
        losses.append(float(run.step(x, y)["loss"]))
    return {"losses": losses, "weights": flat_params(run.model)}


def distill_steps(params, root: Path, strategy: str) -> dict:
    """STEPS distillation steps (resnet8 -> resnet8, AT) on this rank's shares."""
    from pipeline.distill import _teacher_factory
    from sakd.build import build_distill_run

    run = build_distill_run(params, root / "data", torch.device("cpu"),
                            _teacher_factory(params, root, "resnet8"), "resnet8", "at",
                            strategy, seed=0)
    run.step.start_epoch(0)
    losses = []
    for _, (x, y, index) in zip(range(STEPS), run.train_loader, strict=False):
        losses.append(float(run.step(x, y, index)["loss"]))
    weights = [flat_params(m) for m in run.step.modules_to_checkpoint().values()
               if any(True for _ in m.parameters())]
    return {"losses": losses, "weights": torch.cat(weights)}


def global_means_check() -> dict:
    """The loop's epoch reduction with different sums per rank."""
    from sakd.train.loop import _mean_stats

    rank = int(os.environ["RANK"])
    sums = {"p_distill": torch.tensor([0.0, 2.0]) if rank == 0 else torch.tensor([4.0, 2.0]),
            "correct": torch.tensor(rank + 1)}
    means, samples = _mean_stats(sums, samples=2)
    return {"means": means["p_distill"], "correct": int(means["correct"]), "samples": samples}


def main(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from pipeline.distill import run_distill
    from pipeline.pretrain import run_pretrain
    from pipeline.settings import read_params
    from sakd.config import Params

    root_dir = Path(root)
    params = read_params(root_dir / "params.yaml", Params)
    results = {
        "pretrain_metrics": run_pretrain(params, "resnet8", root_dir, progress=False),
        "distill_metrics": run_distill(params, root_dir, "resnet8", "resnet8", "at",
                                       "adaptive", 0, progress=False),
        "global": global_means_check(),
        "pretrain_steps": supervised_steps(params, root_dir),
        "always_steps": distill_steps(params, root_dir, "always"),
        "adaptive_steps": distill_steps(params, root_dir, "adaptive"),
    }
    torch.save(results, Path(out) / f"rank{rank}.pt")
