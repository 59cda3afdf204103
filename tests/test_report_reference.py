"""The paper's numbers (sakd/reference/paper_results.yaml) and their lookup."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from sakd.reference import (
    DISTILLERS,
    load_paper_tables,
    paper_cells,
    paper_lookup,
    paper_result,
)
from sakd.registry import UnknownNameError

TEN = [d for d in DISTILLERS if d != "kd"]


def _cells(table: str):
    return [c for c in paper_cells() if c.table == table]


def test_yaml_is_plain_safe_yaml():
    from importlib import resources

    text = resources.files("sakd.reference").joinpath("paper_results.yaml").read_text()
    assert yaml.safe_load(text)["tables"].keys() == {"III", "IV", "V", "VI", "VII", "VIII"}


@pytest.mark.parametrize("table", ["III", "IV", "V"])
def test_main_tables_have_every_cell(table):
    cells = _cells(table)
    pairs = {(c.teacher, c.student) for c in cells}
    assert len(pairs) == 5
    # 5 pairs x 10 distillers x (Stan., Adap.) + T, S, KD per pair
    distill = [c for c in cells if c.row in TEN]
    assert len(distill) == 5 * 10 * 2
    assert Counter(c.strategy for c in distill) == {"always": 50, "adaptive": 50}
    assert Counter(c.row for c in cells if c.row not in TEN) == {
        "teacher": 5, "student": 5, "kd": 5,
    }


def test_table_vi_and_vii_and_viii_sizes():
    vi = _cells("VI")
    assert len(vi) == 4 * 2 * 2  # AT/SP/CC/CRD x Stan/Adap x top1/top5
    assert {c.dataset for c in vi} == {"imagenet"}
    vii = _cells("VII")
    # CIFAR-100: 6 pairs x 5 distillers x 5 strategies; tiny-ImageNet: 3 pairs x 2 x 5
    assert Counter(c.dataset for c in vii) == {"cifar100": 150, "tiny_imagenet": 30}
    assert len(_cells("VIII")) == 2 * 2 * 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("cifar100", "resnet56", "resnet20", "pkt", "adaptive"), 71.56),
        (("cifar100", "resnet56", "resnet20", "pkt", "always"), 70.72),
        (("cifar100", "resnet56", "resnet20", "teacher", "never"), 72.34),
        (("cifar100", "resnet110", "resnet32", "kd", "always"), 73.08),
        (("cifar100", "vgg13", "vgg8", "nst", "adaptive"), 75.44),  # printed oddity, kept
        (("cifar100", "vgg13", "mobilenetv2", "vid", "adaptive"), 72.70),
        (("cifar100", "resnet50", "vgg8", "at", "adaptive"), 73.82),
        (("tiny_imagenet", "resnet56", "resnet20", "pkt", "adaptive"), 54.50),
        (("tiny_imagenet", "resnet110", "resnet20", "student", "never"), 51.89),
        (("tiny_imagenet", "vgg13", "mobilenetv2", "sp", "random"), 60.67),
        (("cifar100", "resnet32x4", "resnet8x4", "crd", "anti"), 72.38),
        (("cifar100", "wrn_40_2", "shufflenetv1", "sp", "never"), 73.26),
        (("cifar100", "resnet56", "resnet20", "fitnet", "trainable_teacher_scratch"), 70.80),
        (("cifar100", "vgg13", "mobilenetv2", "pkt", "trainable_teacher_pretrained"), 71.66),
    ],
)
def test_spot_checked_values(args, expected):
    assert paper_result(*args) == expected


def test_imagenet_top1_and_top5():
    cc = ("imagenet", "resnet34", "resnet18", "cc")
    assert paper_result(*cc, "adaptive", metric="top5") == 90.28
    assert paper_result(*cc, "always", metric="top5") == 89.17
    assert paper_result(*cc, "adaptive") == 70.72
    assert paper_result(*cc, "always") == 69.96


def test_main_tables_take_precedence_over_the_ablation_table():
    # Table IV's S row (70.50) is the student trained alone; Table VII's No column prints 73.26.
    assert paper_result("cifar100", "wrn_40_2", "shufflenetv1", "student", "never") == 70.50


def test_missing_cells_and_datasets_give_none():
    assert paper_result("cifar100", "resnet56", "resnet20", "kd", "adaptive") is None
    assert paper_result("cifar100", "resnet56", "resnet20", "pkt", "anti") is None
    assert paper_result("cifar100", "resnet56", "resnet20", "pkt", "adaptive", "top5") is None
    assert paper_result("digits", "resnet56", "resnet20", "pkt", "adaptive") is None
    assert paper_lookup("digits") is None
    assert paper_lookup("cifar100")("resnet56", "resnet20", "pkt", "adaptive", "top1") == 71.56


@pytest.mark.parametrize(
    ("distiller", "strategy", "metric", "bad"),
    [("pkd", "adaptive", "top1", "pkd"), ("pkt", "stan", "top1", "stan"),
     ("pkt", "adaptive", "top3", "top3")],
)
def test_unknown_names_raise_and_list_valid_ones(distiller, strategy, metric, bad):
    with pytest.raises(UnknownNameError, match=bad) as info:
        paper_result("cifar100", "resnet56", "resnet20", distiller, strategy, metric)
    assert "valid:" in str(info.value)


# Deltas printed in the paper that disagree with its own Stan./Adap. cells (see YAML comments).
KNOWN_DELTA_ODDITIES = {
    ("III", "resnet32x4", "resnet8x4", "sp"), ("III", "resnet32x4", "resnet8x4", "crd"),
    ("III", "vgg13", "vgg8", "nst"), ("IV", "resnet50", "mobilenetv2", "cc"),
    ("IV", "resnet32x4", "resnet32", "ft"), ("IV", "wrn_40_2", "shufflenetv1", "at"),
    ("V", "resnet56", "resnet20", "cc"), ("V", "wrn_40_2", "wrn_16_2", "sp"),
}


def test_transcription_matches_the_printed_deltas():
    """Every printed Delta equals Adap. - Stan. except the paper's own known slips: a typo in
    a transcribed cell would show up here."""
    checked, odd = 0, set()
    for name, table in load_paper_tables()["tables"].items():
        for pair in table["pairs"]:
            for metric, deltas in pair.get("printed_delta", {}).items():
                for row, printed in deltas.items():
                    cell = pair[metric][row]
                    checked += 1
                    if round(cell["adaptive"] - cell["always"], 2) != printed:
                        odd.add((name, pair["teacher"], pair["student"], row))
    assert checked == 3 * 5 * 10 + 8
    assert odd == KNOWN_DELTA_ODDITIES


def test_ablation_table_agrees_with_the_main_tables():
    main = {(c.dataset, c.teacher, c.student, c.row, c.strategy): c.value
            for c in paper_cells() if c.table in ("III", "IV", "V")}
    for c in _cells("VII"):
        if c.strategy in ("always", "adaptive"):
            assert main[(c.dataset, c.teacher, c.student, c.row, c.strategy)] == c.value, c
