"""dvc.yaml: every stage depends on all the code it runs, so editing code re-runs its stages.

The code a stage runs is found statically: the stage's pipeline module plus every project
module it imports, at module level or inside functions, followed transitively. Each such file
must lie under one of the stage's `deps` paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sakd", "pipeline", "benchmarks")

STAGE_MODULES = {
    "fetch": "pipeline/fetch.py",
    "pretrain": "pipeline/pretrain.py",
    "distill": "pipeline/distill.py",
    "sensitivity": "pipeline/tune.py",
    "evaluate": "pipeline/evaluate.py",
    "report": "pipeline/report.py",
    "compression": "pipeline/compression.py",
    "register": "pipeline/register.py",
}
"""The module behind each stage's `sakd <command>` (pipeline/cli.py dispatches to it)."""


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_files(path: Path, module_level: bool = False) -> set[Path]:
    """Project files that `path` imports anywhere in its body, or at module level only
    (packages' __init__ included)."""
    found: set[Path] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body if module_level else ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
                file = _module_file(".".join(parts[:i]))
                if file is not None:
                    found.add(file)
    return found


def code_of(entry: Path, module_level: bool = False) -> set[Path]:
    """The transitive closure of project imports from `entry` (module-level ones only: what
    merely importing it runs)."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imported_files(path, module_level) - seen)
    return seen


CLI = ROOT / "pipeline" / "cli.py"


def _stage_deps(stage: dict) -> list[Path]:
    body = stage.get("do", stage)
    return [ROOT / dep for dep in body.get("deps", []) if "${" not in dep]


@pytest.mark.parametrize("stage_name", sorted(STAGE_MODULES))
def test_stage_deps_cover_the_code_it_runs(stage_name):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = _stage_deps(stages[stage_name])
    code = code_of(ROOT / STAGE_MODULES[stage_name]) | code_of(CLI, module_level=True)
    missing = sorted(
        str(f.relative_to(ROOT)) for f in code
        if not any(f == d or d in f.parents for d in deps)
    )
    assert not missing, f"stage {stage_name!r} runs code that is not in its deps: {missing}"


def test_the_import_scan_sees_function_level_imports():
    closure = {str(p.relative_to(ROOT)) for p in code_of(ROOT / "pipeline" / "distill.py")}
    assert "sakd/build.py" in closure and "sakd/train/distill_step.py" in closure
    assert "pipeline/tune.py" not in closure  # another stage's code is not pulled in
