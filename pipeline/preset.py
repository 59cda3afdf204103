"""`sakd preset`: switch params.yaml to one of the paper's experiments in configs/.

A preset is a complete params file. Switching validates it, then replaces params.yaml in one
atomic rename, so a bad preset never leaves a half-written or invalid params.yaml behind.
Top-level sections the preset leaves out (e.g. `sensitivity`) are kept from the current
params.yaml, text and comments included, so stages that read them keep working.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError, user_error_types
from sakd.atomic import atomic_write_text
from sakd.config import ConfigError, Params, RunsConfig, load_params
from sakd.schema import SECTIONS
from sakd.yaml_sections import append_sections, readable_mapping

PRESETS_DIR = "configs"
PRESET_SUFFIX = ".yaml"


@dataclass(frozen=True)
class PresetInfo:
    name: str
    path: Path
    summary: str  # the file's first comment line


@dataclass(frozen=True)
class PresetChange:
    """What switching did: the old and new experiment, in numbers a user checks at a glance."""

    source: Path
    target: Path
    before: Params | None  # None: there was no valid params file before
    after: Params
    changed_sections: tuple[str, ...]
    kept_sections: tuple[str, ...]  # taken over from the old file (the preset lacks them)


def distill_run_count(runs: RunsConfig) -> int:
    """Runs in the distill matrix: pairs x distillers x strategies x seeds."""
    return len(runs.pairs) * len(runs.distillers) * len(runs.strategies) * len(runs.seeds)


def list_presets(root: Path) -> list[PresetInfo]:
    """The presets in <root>/configs, by name, each with its first comment line."""
    folder = root / PRESETS_DIR
    paths = sorted(folder.glob(f"*{PRESET_SUFFIX}")) if folder.is_dir() else []
    return [PresetInfo(p.stem, p, first_comment(p.read_text(encoding="utf-8"))) for p in paths]


def first_comment(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def resolve_preset(name_or_path: str, root: Path) -> Path:
    """A preset name (configs/<name>.yaml) or a path to any params file (absolute or from cwd)."""
    looks_like_path = "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(
        (".yaml", ".yml")
    )
    if looks_like_path:
        path = Path(name_or_path).expanduser()
        in_configs = root / PRESETS_DIR / name_or_path  # `cifar100_homogeneous.yaml` works too
        if not path.is_file() and in_configs.is_file():
            return in_configs
        if not path.is_file():
            raise UserError(f"preset file {path} not found (`sakd preset --list` shows presets)")
        return path
    path = root / PRESETS_DIR / f"{name_or_path}{PRESET_SUFFIX}"
    if not path.is_file():
        names = ", ".join(p.name for p in list_presets(root)) or f"none in {root / PRESETS_DIR}"
        raise UserError(f"unknown preset {name_or_path!r}; valid: {names}")
    return path


def apply_preset(source: Path, target: Path) -> PresetChange:
    """Validate `source` (plus the sections it keeps from `target`) and write it over `target`.

    Raises UserError/ConfigError before touching `target` when the result would be invalid.
    """
    try:
        preset_text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read preset {source}: {err}") from None
    preset = _mapping(preset_text, source)
    old_text = target.read_text(encoding="utf-8") if target.is_file() else ""
    old = readable_mapping(old_text)
    kept = _missing_sections(preset, old)
    text = append_sections(preset_text, preset, old_text, old, kept)
    merged = {**preset, **{key: old[key] for key in kept}}
    after = _validate(merged, kept, target)  # nothing is written when this raises
    mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else 0o644
    atomic_write_text(target, text, mode=mode)  # as readable as the file it replaces
    return PresetChange(
        source=source,
        target=target,
        before=_valid_params(old),
        after=after,
        changed_sections=tuple(k for k in merged if merged.get(k) != old.get(k)),
        kept_sections=kept,
    )


def _validate(merged: dict[str, Any], kept: tuple[str, ...], target: Path) -> Params:
    """load_params; an error inside a section kept from `target` says where it came from."""
    try:
        return load_params(merged)
    except ConfigError as err:
        section = err.key.split(".", 1)[0]
        if section not in kept:
            raise
        raise UserError(
            f"the preset has no `{section}` section, so the one in {target.name} is kept, but it "
            f"does not fit the preset: {err}. Fix or delete that section in {target.name}, or "
            f"add a `{section}` section to the preset."
        ) from None


def describe_change(change: PresetChange) -> list[str]:
    """The lines `sakd preset` prints: dataset, run counts, and which sections changed."""
    after, before = change.after, change.before
    r = after.runs
    runs = (
        f"{distill_run_count(r)} ({len(r.pairs)} pairs x {len(r.distillers)} distillers x "
        f"{len(r.strategies)} strategies x {len(r.seeds)} seeds)"
    )
    if before is None:
        lines = [
            f"dataset: {after.data.dataset}",
            f"distill runs: {runs}",
            f"pretrain: {len(r.pretrain)} networks",
            "(the previous params file was missing or invalid)",
        ]
    else:
        lines = [
            f"dataset: {before.data.dataset} -> {after.data.dataset}",
            f"distill runs: {distill_run_count(before.runs)} -> {runs}",
            f"pretrain: {len(before.runs.pretrain)} -> {len(r.pretrain)} networks",
        ]
    changed = ", ".join(change.changed_sections) or "none"
    lines.append(f"sections changed: {changed}")
    if change.kept_sections:
        lines.append(f"kept from the previous file: {', '.join(change.kept_sections)}")
    return [f"{change.target.name} <- {_shown(change.source)}", *(f"  {line}" for line in lines)]


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _mapping(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"preset {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"preset {path} must be a mapping of params sections (like params.yaml)")
    return data


def _missing_sections(preset: dict[str, Any], old: dict[str, Any]) -> tuple[str, ...]:
    """The params sections the old file has and the preset lacks (kept on switching)."""
    return tuple(k for k in SECTIONS if k in old and k not in preset)


def _valid_params(data: dict[str, Any]) -> Params | None:
    if not data:
        return None
    try:
        return load_params(data)
    except user_error_types():  # the old file may be invalid: the summary then says so
        return None
