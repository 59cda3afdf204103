"""Existing presets keep their resolved config hashes when a new key is added at its default.

The hashes tag every MLflow run (`params_hash`), decide whether a checkpoint may be resumed, and
fingerprint the Optuna study: a schema change that moved them would orphan runs in flight. The
values below were computed at commit 3bc34d7, before `distill.router_lr_schedule` existed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sakd.config import DistillConfig, config_hash, flatten, load_params, replace
from sakd.tuning.study import study_fingerprint
from tests.conftest import read_yaml

REPO = Path(__file__).resolve().parents[1]
# params file -> (whole Params, digest of every distill cell's run hash, cells, study fingerprint)
PINNED = {
    "configs/cifar100_ablation.yaml": ("a3cd00a10360", "8f5781021872", 450, "6c0c2005ae21"),
    "configs/cifar100_authors.yaml": ("ac2b80b8cc11", "052a07602831", 660, "3077bc7d0cfb"),
    "configs/cifar100_heterogeneous.yaml": ("e56a270d62ce", "391dc6a938fd", 330, "2ba4eae4458f"),
    "configs/cifar100_homogeneous.yaml": ("57cd52afc015", "12f1e9c48f7d", 330, "7ef3f7b83f70"),
    "configs/imagenet.yaml": ("5594612936e3", "4d288dac8875", 24, "1a91add5b3a7"),
    "configs/tiny_imagenet.yaml": ("77f6ad375f2d", "7b6231bd63a4", 330, "66df416854ff"),
    "configs/tiny_imagenet_ablation.yaml": ("33afb4131da9", "a9ddea74b8c9", 90, "09f3cdde006d"),
    # the default moved to the glyphs benchmark on purpose (docs/benchmark.md); pinned anew
    "params.yaml": ("4ede102a073a", "83af8074bb2b", 9, "2b5fc20549ff"),
}
NEW_PRESETS = {
    "configs/cifar100_trainable_teacher.yaml",  # added with router_lr_schedule
    "configs/cifar100_modern.yaml",  # DKD, beyond the paper (docs/modern.md)
}


def _params(name: str):
    return load_params(read_yaml(REPO / name))


def _cell_hashes(p) -> list[str]:
    """Each distill run's hash, with the arguments pipeline/distill.py hashes."""
    return [config_hash(p.data, p.distill, x.teacher, x.student, d, s, k)
            for x in p.runs.pairs for d in p.runs.distillers for s in p.runs.strategies
            for k in p.runs.seeds]


def test_every_params_file_is_pinned_or_new():
    files = {f"configs/{p.name}" for p in (REPO / "configs").glob("*.yaml")} | {"params.yaml"}
    assert files == set(PINNED) | NEW_PRESETS


@pytest.mark.parametrize("name", sorted(PINNED))
def test_existing_presets_keep_their_hashes(name):
    p = _params(name)
    whole, cells_digest, n_cells, study = PINNED[name]
    cells = _cell_hashes(p)
    assert (config_hash(p), len(cells), study_fingerprint(p)) == (whole, n_cells, study)
    assert hashlib.sha256(" ".join(cells).encode()).hexdigest()[:12] == cells_digest


def test_a_non_default_router_schedule_changes_the_hash_and_every_value_is_logged():
    base = DistillConfig()
    authors = replace(base, router_lr_schedule="authors_trainable_teacher")
    assert config_hash(authors) != config_hash(base)
    assert config_hash(replace(base, router_lr_schedule="follow_student")) == config_hash(base)
    # MLflow params still show the schedule, default included
    assert flatten(base, "distill")["distill.router_lr_schedule"] == "follow_student"
