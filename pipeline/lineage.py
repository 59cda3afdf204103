"""What a run came from, in the places MLflow's UI shows it: the git commit and command (its
Source/Version columns), the DVC experiment name, and the dataset with a content digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.settings import git_commit
from sakd.models.normalise import normalisation_record
from sakd.tracking import MODEL_NAME, DatasetRecord, Tracker

if TYPE_CHECKING:
    from sakd.train.job import TrainingJob

WHOLE_FILE_LIMIT = 256 * 2**20  # larger files are digested by size + first and last MiB
_EDGE = 2**20


def source_tags(root: Path, command: str) -> dict[str, str]:
    """MLflow's own source tags plus `dvc.exp_name` when `dvc exp run` runs the stage."""
    commit = git_commit(root)
    tags = {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": command,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
        "git_dirty": str(commit.endswith("-dirty")).lower(),
    }
    exp_name = os.environ.get("DVC_EXP_NAME")  # DVC sets it during `dvc exp run`
    if exp_name:
        tags["dvc.exp_name"] = exp_name
    return tags


def folder_digest(folder: Path) -> str:
    """sha256 (first 16 hex digits) over every file's relative path and content, in order.

    Files over WHOLE_FILE_LIMIT (ImageNet archives) contribute their size and first and last
    MiB, so the digest stays cheap and still changes when a file is replaced."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with path.open("rb") as f:
            if size <= WHOLE_FILE_LIMIT:
                for block in iter(lambda: f.read(_EDGE), b""):
                    h.update(block)
            else:
                h.update(f.read(_EDGE))
                f.seek(size - _EDGE)
                h.update(f.read(_EDGE))
    return h.hexdigest()[:16]


def dataset_record(dataset: str, folder: Path, splits: dict[str, int]) -> DatasetRecord:
    """The run's dataset: fetched folder, its digest, and the images in each split."""
    return DatasetRecord(name=dataset, digest=folder_digest(folder), source=str(folder),
                         splits=splits)


def log_dataset_and_model(tracker: Tracker, job: TrainingJob, dataset: str,
                          folder: Path) -> str | None:
    """At the end of a run: its dataset (with split sizes) and the trained network as the MLflow
    model `model` (the training normalisation inside: images in [0, 1]); returns its URI."""
    data = job.data
    splits = {name: len(loader.labels) for name in ("train", "val", "test")
              if (loader := getattr(data, name)) is not None}
    tracker.log_dataset(dataset_record(dataset, folder, splits))
    example = next(iter(data.test))[0]
    normalisation = normalisation_record(data.info.mean, data.info.std)  # as trained
    return tracker.log_model(job.model, MODEL_NAME, example, normalisation)
