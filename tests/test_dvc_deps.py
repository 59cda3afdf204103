"""dvc.yaml: every stage depends on exactly the code it runs, so editing code re-runs the stages
that run it and no other (a distiller edit re-runs no teacher's pretraining).

The stages are read from dvc.yaml itself, so a new stage is checked without editing this file.
The code a stage runs is found statically: its `cmd` names a `sakd <command>`; the function
behind that command (in pipeline/cli.py, or imported there from another pipeline module), every
project module it imports, and what importing pipeline/cli.py runs, followed transitively
through imports at module level or inside functions, absolute or relative, and through the
modules the schema imports by name when it validates (`names_from`/`registered_name` in
sakd/schema/base.py: a registry's names, imported when first checked). A stage's code deps
are that closure written as dvc.yaml writes it (`code_deps`): a folder below sakd/ whose every
module is in it, else the files. `python -m tests.test_dvc_deps` prints each stage's list, to
paste into dvc.yaml after a change of imports.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sakd", "pipeline", "benchmarks")
CLI = ROOT / "pipeline" / "cli.py"
LAZY_IMPORTS = ("names_from", "registered_name")  # sakd.schema.base: import a module by name
STAGES: dict[str, dict] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS: dict = yaml.safe_load((ROOT / "params.yaml").read_text())


@functools.cache
def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute_module(path: Path, module: str | None, level: int) -> str:
    """The dotted name that `from <level dots><module> import ...` in `path` refers to."""
    if level == 0:
        return module or ""
    package = path.relative_to(ROOT).parent.parts  # a module's package; __init__'s own
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _node_files(path: Path, node: ast.AST) -> set[Path]:
    """Project files one import statement of `path` runs (packages' __init__ included)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        module = _absolute_module(path, node.module, node.level)
        names = [module] + [f"{module}.{a.name}" for a in node.names]
    elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in LAZY_IMPORTS:
        names = [a.value for a in node.args if isinstance(a, ast.Constant)
                 and isinstance(a.value, str) and _module_file(a.value) is not None]
    found: set[Path] = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
            file = _module_file(".".join(parts[:i]))
            if file is not None:
                found.add(file)
    return found


def _files_of_tree(path: Path, tree: ast.AST, module_level: bool = False) -> set[Path]:
    """Project files imported anywhere inside `tree` (a part of `path`), or at its top level."""
    nodes = tree.body if module_level else ast.walk(tree)  # type: ignore[attr-defined]
    return {file for node in nodes for file in _node_files(path, node)}


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of a project file, parsed once per test session: the files do not
    change while the tests run, and every stage's closure walks most of them again."""
    return ast.parse(path.read_text())


@functools.cache
def _imported_files(path: Path, module_level: bool = False) -> frozenset[Path]:
    """Project files that `path` imports anywhere in its body, or at module level only
    (packages' __init__ included)."""
    return frozenset(_files_of_tree(path, parsed(path), module_level))


@functools.cache
def code_of(entry: Path, module_level: bool = False) -> frozenset[Path]:
    """The transitive closure of project imports from `entry` (module-level ones only: what
    merely importing it runs)."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imported_files(path, module_level) - seen)
    return frozenset(seen)


def _stage_deps(stage: dict) -> list[Path]:
    body = stage.get("do", stage)
    return [ROOT / dep for dep in body.get("deps", []) if "${" not in dep]


def _stage_command(stage_name: str) -> str:
    """`distill` for a stage whose cmd is `sakd distill --teacher ...`."""
    cmd = STAGES[stage_name].get("do", STAGES[stage_name])["cmd"]
    words = (" ".join(cmd) if isinstance(cmd, list) else cmd).split()
    assert words[:1] == ["sakd"] and len(words) > 1, (
        f"stage {stage_name!r} must run one `sakd <command>` (no logic in dvc.yaml), got {cmd!r}")
    return words[1].replace("-", "_")


def _command_function(command: str) -> tuple[Path, ast.FunctionDef]:
    """The file and function behind `sakd <command>`: defined in pipeline/cli.py, or imported
    there from another pipeline module (`from pipeline.cli_tools import tune`)."""
    for node in parsed(CLI).body:
        if isinstance(node, ast.FunctionDef) and node.name == command:
            return CLI, node
        if isinstance(node, ast.ImportFrom) and any(a.name == command for a in node.names):
            file = _module_file(_absolute_module(CLI, node.module, node.level))
            assert file is not None, f"sakd {command}: {node.module} is not a project module"
            for fn in parsed(file).body:
                if isinstance(fn, ast.FunctionDef) and fn.name == command:
                    return file, fn
    raise AssertionError(f"no function for `sakd {command}` in pipeline/cli.py")


@functools.cache
def stage_code(stage_name: str) -> frozenset[Path]:
    """Every project file the stage's `sakd <command>` runs (see the module docstring)."""
    file, function = _command_function(_stage_command(stage_name))
    code = code_of(CLI, module_level=True) | code_of(file, module_level=True)
    for imported in _files_of_tree(file, function):
        code |= code_of(imported)
    return code


def code_deps(stage_name: str) -> list[str]:
    """The stage's code as dvc.yaml lists it: `sakd/<package>` when every module below it is
    run, else each file (pipeline/ and top-level modules always as files)."""
    code = stage_code(stage_name)
    entries = set()
    for file in code:
        rel = file.relative_to(ROOT)
        if len(rel.parts) > 2 and rel.parts[0] == "sakd":
            folder = ROOT / "sakd" / rel.parts[1]
            if all(module in code for module in folder.rglob("*.py")):
                entries.add(f"sakd/{rel.parts[1]}")
                continue
        entries.add(str(rel))
    return sorted(entries)


def _is_code(dep: str) -> bool:
    return dep.split("/", 1)[0] in PACKAGES


@pytest.mark.parametrize("stage_name", sorted(STAGES))
def test_stage_code_deps_are_exactly_the_code_it_runs(stage_name):
    body = STAGES[stage_name].get("do", STAGES[stage_name])
    listed = sorted(dep for dep in body.get("deps", []) if _is_code(dep))
    assert listed == code_deps(stage_name), (
        f"stage {stage_name!r}: its code deps in dvc.yaml differ from the code it runs; "
        f"listed but not run: {sorted(set(listed) - set(code_deps(stage_name)))}, run but not "
        f"listed: {sorted(set(code_deps(stage_name)) - set(listed))} "
        "(`python -m tests.test_dvc_deps` prints the list)")


@pytest.mark.parametrize("stage_name", sorted(STAGES))
def test_stage_deps_cover_the_code_it_runs(stage_name):
    deps = _stage_deps(STAGES[stage_name])
    missing = sorted(
        str(f.relative_to(ROOT)) for f in stage_code(stage_name)
        if not any(f == d or d in f.parents for d in deps)
    )
    assert not missing, f"stage {stage_name!r} runs code that is not in its deps: {missing}"


def test_the_stages_come_from_dvc_yaml_and_their_code_from_the_cli():
    assert {"fetch", "pretrain", "distill", "sensitivity", "report"} <= set(STAGES)
    assert _stage_command("sensitivity") == "tune"  # a stage named apart from its command
    assert _command_function("tune")[0] == ROOT / "pipeline" / "cli_tools.py"
    tune = {str(p.relative_to(ROOT)) for p in stage_code("sensitivity")}
    assert "pipeline/tune.py" in tune and "pipeline/report.py" not in tune
    register = {str(p.relative_to(ROOT)) for p in stage_code("register")}
    assert "pipeline/settings.py" in register  # imported by the `register` command itself


def test_the_import_scan_sees_function_level_imports():
    closure = {str(p.relative_to(ROOT)) for p in stage_code("distill")}
    assert "sakd/build.py" in closure and "sakd/train/distill_step.py" in closure
    assert "pipeline/distill.py" in closure  # imported inside the `distill` command only
    assert "pipeline/tune.py" not in closure  # another stage's code is not pulled in


def test_the_import_scan_sees_modules_the_schema_imports_by_name():
    tree = ast.parse('ModelName = registered_name("model", "sakd.models", "list_models")\n'
                     'names = names_from("sakd.train.optimizers", "list_optimizers")\n')
    found = _files_of_tree(ROOT / "sakd" / "schema" / "base.py", tree)
    assert ROOT / "sakd" / "models" / "__init__.py" in found
    assert ROOT / "sakd" / "train" / "optimizers.py" in found
    assert not _files_of_tree(ROOT / "sakd" / "schema" / "base.py", tree, module_level=True)


def test_the_import_scan_sees_relative_imports():
    spots = ROOT / "sakd" / "spots"
    assert _absolute_module(spots / "tau.py", "registry", 2) == "sakd.registry"
    assert _absolute_module(spots / "tau.py", None, 1) == "sakd.spots"
    assert _absolute_module(spots / "__init__.py", "tau", 1) == "sakd.spots.tau"
    tree = ast.parse("from . import tau\nfrom ..registry import Registry\n")
    found = {str(p.relative_to(ROOT)) for p in _files_of_tree(spots / "policy.py", tree)}
    assert found == {"sakd/__init__.py", "sakd/spots/__init__.py", "sakd/spots/tau.py",
                     "sakd/registry.py"}


# ---------------------------------------------------------------------------- what goes stale
def _paths(entries: list) -> list[str]:
    """Paths of a stage's outs/metrics/plots entries (a plot may be {path: options})."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def _resolved(path: str) -> str:
    """`path` with params.yaml's values for `${data.root}`-style keys (`${item...}` stays)."""
    def value(match: re.Match) -> str:
        found: object = PARAMS
        for key in match.group(1).split("."):
            found = found.get(key) if isinstance(found, dict) else None
        return str(found) if isinstance(found, str | int | float) else match.group(0)

    return re.sub(r"\$\{([\w.]+)\}", value, path)


def _overlap(a: str, b: str) -> bool:
    """Whether one path lies inside the other (an unresolved `${item...}` segment matches any
    name)."""
    pa, pb = _resolved(a).strip("/").split("/"), _resolved(b).strip("/").split("/")
    return all(x == y or "${" in x or "${" in y for x, y in zip(pa, pb, strict=False))


def stale_stages(changed: str) -> set[str]:
    """The stages `dvc status` shows changed after editing the file `changed`: those whose
    deps hold it, and every stage downstream of one (its deps hold another's outputs)."""
    bodies = {name: stage.get("do", stage) for name, stage in STAGES.items()}
    stale = {name for name, body in bodies.items()
             if any(_overlap(dep, changed) for dep in body.get("deps", []))}
    grew = True
    while grew:
        outs = [out for name in stale for key in ("outs", "metrics", "plots")
                for out in _paths(bodies[name].get(key, []))]
        downstream = {name for name, body in bodies.items()
                      if any(_overlap(dep, out) for dep in body.get("deps", []) for out in outs)}
        grew = not downstream <= stale
        stale |= downstream
    return stale


def test_a_distiller_edit_re_runs_distillation_and_downstream_only():
    stale = stale_stages("sakd/distillers/kd.py")
    assert "distill" in stale and not stale & {"fetch", "pretrain"}, stale
    assert stale_stages("sakd/distillers/at.py") == stale


def test_a_spot_edit_re_runs_no_pretraining():
    for changed in ("sakd/spots/tau.py", "sakd/spots/routing.py", "sakd/config/sections.py"):
        stale = stale_stages(changed)
        assert "distill" in stale and not stale & {"fetch", "pretrain"}, (changed, stale)


def test_pretraining_imports_no_distiller_or_spot_code():
    closure = {str(p.relative_to(ROOT)) for p in stage_code("pretrain") | stage_code("fetch")}
    assert "sakd/build_pretrain.py" in closure and "sakd/build.py" not in closure
    assert not {p for p in closure if p.startswith(("sakd/distillers", "sakd/spots",
                                                    "sakd/config"))}


def test_the_stale_walk_follows_outputs_to_downstream_stages():
    stale = stale_stages("pipeline/fetch.py")  # the data: every stage that reads it
    assert {"fetch", "pretrain", "distill", "evaluate", "report"} <= stale
    dataset = PARAMS["data"]["dataset"]
    assert _overlap("models/teachers/${data.dataset}", f"models/teachers/{dataset}/resnet8.pt")
    assert _overlap("models/teachers/${data.dataset}/${item}.pt", f"models/teachers/{dataset}")
    assert not _overlap("models/students/${data.dataset}", "models/teachers/${data.dataset}")
    assert not _overlap("${data.root}/${data.dataset}", "reports/sensitivity.md")


if __name__ == "__main__":  # print each stage's code deps, as dvc.yaml lists them
    for name in STAGES:
        print(f"{name}:")
        print("\n".join(f"  - {dep}" for dep in code_deps(name)))
