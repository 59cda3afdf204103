"""Top-level sections of a YAML file as text: carry sections from one file into another.

Switching params files keeps the sections the new file lacks from the old one. Copying their
text (comments included) rather than re-dumping the parsed values keeps what a person wrote;
`append_sections` falls back to a plain dump only when the copied text would not parse back to
the same values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


def readable_mapping(text: str) -> dict[str, Any]:
    """The YAML mapping in `text`, or {} when it is empty, invalid or not a mapping."""
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def append_sections(
    text: str, data: dict[str, Any], source_text: str, source: dict[str, Any], keys: Sequence[str]
) -> str:
    """`text` (parsed: `data`) plus the top-level `keys` of `source_text` (parsed: `source`).

    The sections are copied verbatim when possible, else dumped from `source`.
    """
    if not keys:
        return text
    blocks = top_level_blocks(source_text)
    tail = "\n".join(blocks[k] for k in keys if k in blocks)
    merged = text.rstrip("\n") + "\n\n" + tail
    expected = {**data, **{k: source[k] for k in keys}}
    if len(blocks.keys() & set(keys)) != len(keys) or readable_mapping(merged) != expected:
        dumped = yaml.safe_dump({k: source[k] for k in keys}, sort_keys=False)
        merged = text.rstrip("\n") + "\n\n" + dumped
    return merged


def top_level_blocks(text: str) -> dict[str, str]:
    """Each top-level key's text: its line, what follows it, and the comments right above it."""
    lines = text.splitlines()
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOP_KEY.match(line))]
    heads = [_comment_head(lines, i) for i, _ in starts]
    blocks = {}
    for n, (_, key) in enumerate(starts):
        end = heads[n + 1] if n + 1 < len(starts) else len(lines)
        block = lines[heads[n] : end]
        while block and not block[-1].strip():
            block.pop()
        blocks[key] = "\n".join(block) + "\n"
    return blocks


def _comment_head(lines: list[str], i: int) -> int:
    """Where the block of key line `i` starts: the column-0 comments directly above it."""
    while i > 0 and lines[i - 1].startswith("#"):
        i -= 1
    return i
