"""Fig. 5-style artifact: validation images with the per-spot distillation decision of each."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from pipeline.outputs import write_csv
from sakd.atomic import atomic_write


def _first_images(loader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys, have = [], [], 0
    for x, y, *_ in loader:
        xs.append(x[: n - have])
        ys.append(y[: n - have])
        have += xs[-1].shape[0]
        if have >= n:
            break
    return torch.cat(xs), torch.cat(ys)


def write_decision_grid(step, loader, info: Any, n: int, folder: Path) -> list[Path]:
    """decisions.png (images, label, a check or cross per spot) and decisions.csv; paths back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = _first_images(loader, n)
    mask = step.decide(x).cpu()
    names = step.spot_names
    rows = [
        {"image": i, "label": int(y[i]), **{s: int(mask[i, j]) for j, s in enumerate(names)}}
        for i in range(x.shape[0])
    ]
    csv_path = folder / "decisions.csv"
    write_csv(csv_path, rows, ["image", "label", *names])

    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    images = (x.float().cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    cols = min(8, len(images))
    grid_rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(1.9 * cols, 2.3 * grid_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[: len(images)]):
        ax.imshow(images[i], interpolation="nearest")
        marks = " ".join(
            f"{s}{'✓' if mask[i, j] else '✗'}" for j, s in enumerate(names)
        )
        ax.set_title(f"label {int(y[i])}\n{marks}", fontsize=6)
    fig.suptitle(f"Distillation decisions per spot ({step.strategy.name}); ✓ = distilled",
                 fontsize=9)
    fig.tight_layout()
    png_path = folder / "decisions.png"
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return [png_path, csv_path]
