"""The house's layers (DESIGN.md): imports that must never exist, at module or function level,
absolute (`from sakd.spots import x`) or relative (`from ..spots import x`, `from . import y`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_dvc_deps import ROOT, _files_of_tree, parsed

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


def offenders(path: Path, tree: ast.AST, imported: str) -> list[str]:
    """`path -> target` for every file under `imported` that `tree` (the code of `path`)
    imports, anywhere in it."""
    return [f"{path.relative_to(ROOT)} -> {target.relative_to(ROOT)}"
            for target in sorted(_files_of_tree(path, tree))
            if (ROOT / imported) in target.parents]


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_no_import_runs_against_the_layers(importer, imported):
    found = [line for path in sorted((ROOT / importer).rglob("*.py"))
             for line in offenders(path, parsed(path), imported)]
    assert not found, f"{importer} must not import {imported}: {found}"


@pytest.mark.parametrize("source", [
    "from ..spots import gumbel",          # a sibling package, relative
    "from ..spots.tau import TauClock",     # a module in it
    "from .. import spots",                # the package itself
    "def f():\n    from ..spots import policy\n",  # inside a function
])
def test_relative_imports_are_checked_too(source):
    path = ROOT / "sakd" / "models" / "resnet.py"
    assert offenders(path, ast.parse(source), "sakd/spots"), source
    assert not offenders(path, ast.parse("from .base import SpotNet\nfrom . import zoo"),
                         "sakd/spots")
