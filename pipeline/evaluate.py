"""`evaluate` stage: test top-1/top-5 of every pretrained model and every distilled student."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError
from pipeline.outputs import write_json
from pipeline.paths import Layout, run_key
from pipeline.settings import resolve_device
from pipeline.trained import load_trained
from sakd.config import Params
from sakd.data import build_loaders
from sakd.train.checkpoint import check_recorded
from sakd.train.evaluate import evaluate


def _best(history: list[dict]) -> tuple[float, int]:
    """The best epoch by validation top-1 (never by test)."""
    best = max(history, key=lambda h: h["val/top1"])
    return best["val/top1"], int(best["epoch"])


def run_evaluate(params: Params, root: Path) -> Path:
    """Evaluate everything runs.* declares; writes metrics/evaluate/<dataset>.json."""
    data = params.data
    layout = Layout(root, data.dataset)
    device = resolve_device(params.runtime)
    _, test_loader, info = build_loaders(
        data.dataset, root / data.root, batch_size=256, device=device, seed=0,
        num_workers=data.workers, channels_last=params.runtime.channels_last,
        **params.data.dataset_options(),
    )
    missing: list[str] = []
    teachers: dict[str, dict] = {}
    for arch in params.runs.pretrain:
        path = layout.pretrained(arch)
        if not path.exists():
            missing.append(f"{path} (dvc repro pretrain@{arch})")
            continue
        model, state = load_trained(path, "model", f"pretrain@{arch}", arch, info.num_classes)
        acc = evaluate(model.to(device), test_loader)
        teachers[arch] = {"top1": acc["top1"], "top5": acc["top5"],
                          "val_top1": state["history"][-1]["val/top1"]}
    students: dict[str, dict] = {}
    for pair in params.runs.pairs:
        for distiller in params.runs.distillers:
            for strategy in params.runs.strategies:
                for seed in params.runs.seeds:
                    key = run_key(pair.teacher, pair.student, distiller, strategy, seed)
                    path = layout.student(key)
                    if not path.exists():
                        missing.append(f"{path} (dvc repro distill)")
                        continue
                    model, state = load_trained(path, "student", "distill", pair.student,
                                                info.num_classes)
                    check_recorded(path, state, teacher=pair.teacher, distiller=distiller,
                                   strategy=strategy, seed=seed)
                    acc = evaluate(model.to(device), test_loader)
                    best_val_top1, best_epoch = _best(state["history"])
                    students[key] = {
                        "teacher": pair.teacher, "student": pair.student,
                        "distiller": distiller, "strategy": strategy, "seed": seed,
                        "top1": acc["top1"], "top5": acc["top5"],
                        "val_top1": state["history"][-1]["val/top1"],
                        "best_val_top1": best_val_top1, "best_epoch": best_epoch,
                        "epochs": int(state["epoch"]),
                    }
    if missing:
        shown = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise UserError(f"{len(missing)} checkpoints are missing:\n  {shown}{more}")
    out = layout.evaluate_metrics()
    write_json(out, {"dataset": data.dataset, "teachers": teachers, "students": students})
    return out

