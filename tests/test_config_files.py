"""params FILES: duplicate keys, empty files, missing sections, and many generated malformed
files (type swaps, non-finite and out-of-range numbers, unknown and duplicate keys, missing
sections), each refused with its dotted key named; a few through `sakd check`."""

from __future__ import annotations

import copy
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import UserError
from pipeline.settings import read_params
from sakd.config import REQUIRED_SECTIONS, ConfigError, Params
from tests.conftest import repo_params

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^[A-Za-z_][\w.\[\]]*: \S")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repository_params_file_loads():
    assert read_params(REPO / "params.yaml", Params).data.dataset == "glyphs"


@pytest.mark.parametrize(("text", "key", "lines"), [
    ("data: {}\nruns: {}\ndata: {}\n", "data", (3, 1)),
    ("data:\n  root: a\n  dataset: digits\n  root: b\n", "data.root", (4, 2)),
    ("runs:\n  pairs:\n    - {teacher: a, student: b}\n    - {teacher: a, teacher: b}\n",
     "runs.pairs[1].teacher", (4, 4)),
])
def test_duplicate_keys_are_refused_by_key_and_line(tmp_path, text, key, lines):
    with pytest.raises(ConfigError) as err:
        read_params(_write(tmp_path, text), Params)
    assert err.value.key == key
    assert f"line {lines[0]}; first at line {lines[1]}" in str(err.value)


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"), ("# only a comment\n", "empty"), ("- data\n", "mapping"),
    ("just text\n", "mapping"), ("data: [\n", "not valid YAML"),
])
def test_empty_and_non_mapping_files_are_refused(tmp_path, text, fragment):
    with pytest.raises(UserError, match=fragment):
        read_params(_write(tmp_path, text), Params)


@pytest.mark.parametrize("section", REQUIRED_SECTIONS)
def test_missing_required_sections_are_refused(tmp_path, default_params, section):
    del default_params[section]
    with pytest.raises(ConfigError) as err:
        read_params(_write(tmp_path, yaml.safe_dump(default_params)), Params)
    assert err.value.key == section and "missing required section" in err.value.message


@pytest.mark.parametrize("section", ["runtime", "tracking", "sensitivity"])
def test_optional_sections_take_their_defaults(tmp_path, default_params, section):
    del default_params[section]
    assert read_params(_write(tmp_path, yaml.safe_dump(default_params)), Params)


# ------------------------------------------------------------ a stage validates what it reads
def test_the_schema_sections_are_the_params_fields():
    from sakd.schema import SECTIONS

    assert set(SECTIONS) == set(Params.model_fields)


def test_pretraining_validates_only_the_sections_it_reads(tmp_path, default_params):
    from sakd.schema import DataParams, PretrainParams

    default_params["distill"]["lr"] = -1.0  # another stage's section: not pretraining's to check
    default_params["runs"]["distillers"] = ["no_such_distiller"]
    path = _write(tmp_path, yaml.safe_dump(default_params))
    pre = read_params(path, PretrainParams)
    assert pre.runs.pretrain == default_params["runs"]["pretrain"] and not hasattr(pre, "distill")
    assert read_params(path, DataParams).data.dataset == default_params["data"]["dataset"]
    with pytest.raises(ConfigError) as err:
        read_params(path, Params)
    assert [k for k, _ in err.value.problems] == ["runs.distillers[0]", "distill.lr"]
    default_params["pretrain"]["lr"] = -1.0  # its own section, and an unknown one, still refused
    default_params["distil"] = {}
    with pytest.raises(ConfigError) as err:
        read_params(_write(tmp_path, yaml.safe_dump(default_params)), PretrainParams)
    assert [k for k, _ in err.value.problems] == ["pretrain.lr", "distil"]


def test_the_pretrain_and_fetch_stages_import_no_distiller_or_spot_code():
    """What the static closure (tests/test_dvc_deps.py) says, seen in a fresh interpreter: the
    stage modules load and validate params.yaml without the distill side's packages."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import pipeline.cli, pipeline.fetch, pipeline.pretrain\n"
        "from pipeline.settings import read_params\n"
        "from sakd.schema import PretrainParams\n"
        "read_params(Path('params.yaml'), PretrainParams)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sakd.distillers', 'sakd.spots', "
        "'sakd.config', 'sakd.build'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.split("\n")[-2] == "['sakd.build_common', 'sakd.build_pretrain']"


# ------------------------------------------------------------ generated malformed params files


def _nodes(node, path=()):
    """(path, value) of every node below the root, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for k, v in items:
        yield (*path, k), v
        yield from _nodes(v, (*path, k))


def _dotted(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _put(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _wrong_type(value, rng: random.Random):
    if isinstance(value, bool):
        return rng.choice(["true", 1, [True]])
    if isinstance(value, int):
        return rng.choice([str(value), value + 0.5, True, [value]])
    if isinstance(value, float):
        return rng.choice([str(value), True, [value], {"v": value}])
    if isinstance(value, str):
        return rng.choice([7, 2.5, False, [value]])
    if isinstance(value, list):
        return rng.choice(["a,b", 3, {"x": 1}])
    if isinstance(value, dict):
        return rng.choice([[1], "text", 4])
    return rng.choice([[1, 2], 3.5])  # null


def _mutate(data: dict, rng: random.Random) -> tuple[str, str]:
    """Break `data` (or describe how to break its text); returns (kind, dotted key)."""
    nodes = list(_nodes(data))
    kind = rng.choice(["type", "non_finite", "range", "unknown", "duplicate", "missing"])
    floats = [(p, v) for p, v in nodes if isinstance(v, float)]
    ints = [(p, v) for p, v in nodes if isinstance(v, int) and not isinstance(v, bool)]
    if kind == "type":
        path, value = rng.choice(nodes)
        _put(data, path, _wrong_type(value, rng))
    elif kind == "non_finite":
        path, _ = rng.choice(floats)
        _put(data, path, rng.choice([math.nan, math.inf, -math.inf]))
    elif kind == "range":
        path, _ = rng.choice(floats + ints)
        huge = rng.choice([10**40, 2**64, 1e300])
        _put(data, path, rng.choice([huge, -huge]))
    elif kind == "unknown":
        mappings = [((), data)] + [(p, v) for p, v in nodes if isinstance(v, dict)]
        path, mapping = rng.choice(mappings)
        name = f"zz_{rng.randrange(1000)}"
        mapping[name] = rng.choice([1, "x", 0.5])
        path = (*path, name)
    elif kind == "missing":
        path = (rng.choice(REQUIRED_SECTIONS),)
        del data[path[0]]
    else:
        path = ()  # chosen in the text by _duplicate_a_line
    return kind, _dotted(path)


def _duplicate_a_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]\w*:", line)]
    i = rng.choice(keyed)
    return "\n".join([*lines[: i + 1], lines[i], *lines[i + 1:]]) + "\n"


# libyaml's dumper where PyYAML has it: the same text as safe_dump (all 240 cases), 4x faster
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _cases(n: int = 240, seed: int = 1234):
    rng = random.Random(seed)
    base = repo_params()
    for _ in range(n):
        data = copy.deepcopy(base)
        kind, key = _mutate(data, rng)
        text = yaml.dump(data, Dumper=DUMPER, sort_keys=False, allow_unicode=True)
        if kind == "duplicate":
            text = _duplicate_a_line(text, rng)
        yield kind, key, text


def test_generated_malformed_files_are_refused_naming_a_dotted_key(tmp_path):
    kinds = set()
    for n, (kind, key, text) in enumerate(_cases()):
        path = tmp_path / f"p{n}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as err:  # UserError would mean no key named
            read_params(path, Params)
        keys = [k for k, _ in err.value.problems]
        lines = str(err.value).splitlines()
        assert lines and all(LINE.match(line) for line in lines), (kind, key, str(err.value))
        if key:  # the broken key itself, or a key inside it, is named
            assert any(k == key or k.startswith((f"{key}.", f"{key}[")) for k in keys), \
                (kind, key, keys)
        else:
            assert "duplicate key" in err.value.message
        kinds.add(kind)
    assert kinds == {"type", "non_finite", "range", "unknown", "duplicate", "missing"}


# ------------------------------------------------------------------- through the real CLI


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5])
def test_sakd_check_refuses_malformed_files_cleanly(tmp_path, n):
    kind, _, text = list(_cases(n=6, seed=99))[n]
    path = _write(tmp_path, text)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*")}
    result = CliRunner().invoke(app, ["check", "--params", str(path), "--root", str(tmp_path)])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, (kind, output)
    assert "Traceback" not in output and "error:" in output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*")} == before  # nothing written


def test_sakd_check_names_a_duplicate_key(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  lr_decay: 0.1\n",
                                                      "  lr_decay: 0.1\n  lr_decay: 0.2\n", 1)
    result = CliRunner().invoke(app, ["check", "--params", str(_write(tmp_path, text))])
    assert result.exit_code == 2
    assert "pretrain.lr_decay: duplicate key" in result.output
