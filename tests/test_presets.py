"""The paper presets (configs/*.yaml) and `sakd preset`, which switches params.yaml to one.

A preset must run exactly its table: the paper's pairs, distillers and strategies under the
paper's protocol, and its header must state the run count it really has. Switching must never
leave a broken or half-written params.yaml.
"""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.preset import distill_run_count, first_comment
from sakd.config import Params, load_params
from sakd.reference import paper_cells
from tests.conftest import read_yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# preset -> (paper table, dataset of its rows)
PRESET_TABLES = {
    "cifar100_homogeneous": ("III", "cifar100"),
    "cifar100_heterogeneous": ("IV", "cifar100"),
    "tiny_imagenet": ("V", "tiny_imagenet"),
    "imagenet": ("VI", "imagenet"),
    "cifar100_ablation": ("VII", "cifar100"),
    "tiny_imagenet_ablation": ("VII", "tiny_imagenet"),
}
SMALL_LR_STUDENTS = {"mobilenetv2", "shufflenetv1"}
ALL_PRESETS = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def preset_data(name: str) -> dict:
    return read_yaml(CONFIGS / f"{name}.yaml")


def preset(name: str) -> Params:
    return load_params(preset_data(name))


def table_cells(name: str):
    table, dataset = PRESET_TABLES[name]
    return [c for c in paper_cells() if c.table == table and c.dataset == dataset]


def test_every_table_has_its_preset():
    assert set(PRESET_TABLES) <= set(ALL_PRESETS)


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_every_preset_validates(name):
    assert isinstance(preset(name), Params)


@pytest.mark.parametrize("name", sorted(PRESET_TABLES))
def test_preset_runs_exactly_its_tables_cells(name):
    p, cells = preset(name), table_cells(name)
    distilled = [c for c in cells if c.row not in ("teacher", "student")]
    assert p.data.dataset == PRESET_TABLES[name][1]
    assert [(x.teacher, x.student) for x in p.runs.pairs] == list(
        dict.fromkeys((c.teacher, c.student) for c in cells)
    )
    assert set(p.runs.distillers) == {c.row for c in distilled}
    assert len(set(p.runs.distillers)) == len(p.runs.distillers)
    assert set(p.runs.strategies) == {c.strategy for c in distilled}
    assert set(p.runs.pretrain) == {a for c in cells for a in (c.teacher, c.student)}


@pytest.mark.parametrize("name", sorted(set(PRESET_TABLES) - {"imagenet"}))
def test_cifar_and_tiny_presets_follow_the_papers_protocol(name):
    p = preset(name)
    for section in (p.pretrain, p.distill):
        assert (section.epochs, section.batch_size, section.lr) == (240, 64, 0.05)
        assert section.milestones == [150, 180, 210]
        assert (section.lr_decay, section.momentum, section.weight_decay) == (0.1, 0.9, 5e-4)
    d = p.distill
    assert p.runs.seeds == [0, 1, 2]
    assert (d.beta1, d.beta3, d.kd_T) == (1.0, 1.0, 4.0)
    assert d.beta2 == {}  # Table II, the defaults
    assert d.beta2_for("at") == 1000.0 and d.beta2_for("fitnet") == 1.0
    assert d.tau.tau0 == 5.0 and d.tau.tau_min < d.tau.tau0 and d.tau.schedule != "constant"
    assert (d.options_for("crd").nce_k, d.options_for("ft").pretrain_epochs,
            d.teacher_trainable) == (16384, 30, "frozen")
    assert p.runtime.device == "auto"


def test_imagenet_preset_uses_the_standard_imagenet_schedule():
    p = preset("imagenet")
    for section in (p.pretrain, p.distill):
        assert (section.epochs, section.batch_size, section.lr) == (90, 256, 0.1)
        assert section.milestones == [30, 60]
    assert p.runs.seeds == [0, 1, 2]
    assert p.data.imagenet_path  # a placeholder the user edits, marked as such
    text = (CONFIGS / "imagenet.yaml").read_text()
    assert re.search(r"imagenet_path: \S+\s+# EDIT", text)


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_mobilenetv2_and_shufflenetv1_students_use_lr_001(name):
    p = preset(name)
    for pair in p.runs.pairs:
        for section in (p.pretrain, p.distill):
            recipes = section.optimizer_by_arch  # transformers: their own (AdamW) recipe
            expected = (recipes[pair.student].lr if pair.student in recipes
                        else 0.01 if pair.student in SMALL_LR_STUDENTS else section.lr)
            assert section.lr_for(pair.student) == expected, (pair.name, section)
            teacher = recipes[pair.teacher].lr if pair.teacher in recipes else section.lr
            assert section.lr_for(pair.teacher) == teacher


def test_some_preset_has_small_lr_students():
    students = {x.student for name in ALL_PRESETS for x in preset(name).runs.pairs}
    assert students >= SMALL_LR_STUDENTS


@pytest.mark.parametrize("dataset", ["cifar100", "tiny_imagenet"])
def test_presets_of_a_dataset_differ_only_in_runs(dataset):
    """So Table VII's T/S rows and teachers are the very ones of Tables III-V."""
    datas = [preset_data(n) for n, (_, ds) in PRESET_TABLES.items() if ds == dataset]
    assert len(datas) >= 2
    for other in datas[1:]:
        assert {k: v for k, v in other.items() if k != "runs"} == {
            k: v for k, v in datas[0].items() if k != "runs"
        }


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_header_names_the_table_and_states_true_run_counts(name):
    text = (CONFIGS / f"{name}.yaml").read_text()
    header = text[: text.index("\ndata:")]
    p = preset(name)
    assert re.match(r"Table [IVX]+\b", first_comment(text))
    runs = re.search(r"Runs: distill (\d+) = .*; pretrain (\d+) networks", header)
    assert runs, "the header states the run count"
    assert int(runs.group(1)) == distill_run_count(p.runs)
    assert int(runs.group(2)) == len(p.runs.pretrain)
    assert "ESTIMATE" in header and "GPU-hours" in header


def test_docs_table_lists_every_preset_with_its_run_count():
    doc = (REPO / "docs" / "presets.md").read_text()
    for name in ALL_PRESETS:
        row = re.search(rf"^\| `{name}` \|.*$", doc, re.MULTILINE)
        assert row, f"docs/presets.md has no row for {name}"
        assert f"| {distill_run_count(preset(name).runs)} |" in row.group(0)


# --- `sakd preset` --------------------------------------------------------------------------

DIGITS_PARAMS = """\
# the default
data: {dataset: digits}
runs:
  pretrain: [resnet14, resnet8]
  pairs: [{teacher: resnet14, student: resnet8}]
tracking:
  experiment_prefix: mine   # a note the switch must keep
"""


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project copy: the presets and its own small params.yaml; cwd inside it."""
    shutil.copytree(CONFIGS, tmp_path / "configs")
    (tmp_path / "params.yaml").write_text(DIGITS_PARAMS)
    (tmp_path / "params.yaml").chmod(0o644)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sakd(*args: str):
    return CliRunner().invoke(app, list(args))


def test_preset_writes_params_and_reports_the_change(project):
    result = sakd("preset", "cifar100_homogeneous")
    assert result.exit_code == 0, result.output
    written = (project / "params.yaml").read_text()
    assert written == (CONFIGS / "cifar100_homogeneous.yaml").read_text()
    assert "digits -> cifar100" in result.output
    assert "330 (5 pairs x 11 distillers x 2 strategies x 3 seeds)" in result.output
    assert stat.S_IMODE((project / "params.yaml").stat().st_mode) == 0o644
    assert sorted(p.name for p in project.iterdir()) == ["configs", "params.yaml"]  # no temp


def test_sections_the_preset_lacks_are_kept_verbatim(project):
    data = preset_data("imagenet")
    del data["tracking"]
    (project / "mine.yaml").write_text(yaml.safe_dump(data))
    result = sakd("preset", "./mine.yaml")
    assert result.exit_code == 0, result.output
    text = (project / "params.yaml").read_text()
    assert "experiment_prefix: mine   # a note the switch must keep" in text
    params = load_params(yaml.safe_load(text))
    assert params.tracking.experiment_prefix == "mine"
    assert params.data.dataset == "imagenet"
    assert "kept from the previous file: tracking" in result.output


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("data: {dataset: digits}\nruns: {pretrain: [resnet8], distillers: [fitnets],\n"
         "  pairs: [{teacher: resnet8, student: resnet8}]}\n", "runs.distillers[0]"),
        ("data: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "mapping"),
    ],
)
def test_a_bad_preset_exits_2_and_leaves_params_untouched(project, content, fragment):
    (project / "bad.yaml").write_text(content)
    before = (project / "params.yaml").stat()
    result = sakd("preset", "bad.yaml")
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert (project / "params.yaml").read_text() == DIGITS_PARAMS
    assert (project / "params.yaml").stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in project.iterdir()) == ["bad.yaml", "configs", "params.yaml"]


def test_an_unknown_preset_name_lists_the_valid_ones(project):
    result = sakd("preset", "cifar100_homogenous")
    assert result.exit_code == 2
    assert "cifar100_homogeneous" in result.output
    assert (project / "params.yaml").read_text() == DIGITS_PARAMS


def test_list_shows_every_preset_with_its_first_comment_line(project):
    result = sakd("preset", "--list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(ALL_PRESETS)
    for name, line in zip(ALL_PRESETS, lines, strict=True):
        assert line.split()[0] == name
        assert line.endswith(first_comment((CONFIGS / f"{name}.yaml").read_text()))
    assert (project / "params.yaml").read_text() == DIGITS_PARAMS


def test_a_preset_can_be_named_with_its_file_name(project):
    result = sakd("preset", "imagenet.yaml")
    assert result.exit_code == 0, result.output
    assert load_params(yaml.safe_load((project / "params.yaml").read_text())).data.dataset == (
        "imagenet"
    )


def test_a_broken_params_file_is_replaced(project):
    (project / "params.yaml").write_text("data: [unclosed\n")
    result = sakd("preset", "tiny_imagenet")
    assert result.exit_code == 0, result.output
    assert "missing or invalid" in result.output
    assert (project / "params.yaml").read_text() == (CONFIGS / "tiny_imagenet.yaml").read_text()
