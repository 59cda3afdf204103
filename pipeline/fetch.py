"""`fetch` stage: make the configured dataset ready under data/<dataset>/."""

from __future__ import annotations

from pathlib import Path

from sakd.data import fetch_dataset
from sakd.schema import DataParams


def run_fetch(params: DataParams, root: Path, dataset: str | None = None) -> Path:
    """Fetch `dataset` (default: data.dataset) with the options params.data gives it."""
    name = dataset or params.data.dataset
    options = params.data.dataset_options() if name == params.data.dataset else {}
    return fetch_dataset(name, root / params.data.root, **options)
