"""The house's layers (DESIGN.md): imports that must never exist, at module or function level."""

from __future__ import annotations

import pytest

from tests.test_dvc_deps import ROOT, _imported_files

FORBIDDEN = [
    ("sakd", "pipeline"),
    ("sakd", "benchmarks"),
    ("sakd/models", "sakd/spots"),
    ("sakd/models", "sakd/distillers"),
    ("sakd/distillers", "sakd/spots"),
    ("sakd/data", "sakd/models"),
    ("sakd/train", "sakd/tuning"),
    ("sakd/config", "sakd/tuning"),
]


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_no_import_runs_against_the_layers(importer, imported):
    offenders = []
    for path in sorted((ROOT / importer).rglob("*.py")):
        for target in _imported_files(path):
            if (ROOT / imported) in target.parents:
                offenders.append(f"{path.relative_to(ROOT)} -> {target.relative_to(ROOT)}")
    assert not offenders, f"{importer} must not import {imported}: {offenders}"
