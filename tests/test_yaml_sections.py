"""sakd.yaml_sections: carried sections keep their text and comments, and always parse back."""

from __future__ import annotations

import yaml

from sakd.yaml_sections import append_sections, readable_mapping, top_level_blocks

OLD = """# header
data:
  dataset: digits

# how sensitive
sensitivity:
  taus: [1, 2]   # two values
"""


def test_blocks_carry_the_comments_right_above_them():
    blocks = top_level_blocks(OLD)
    assert blocks["sensitivity"] == "# how sensitive\nsensitivity:\n  taus: [1, 2]   # two values\n"
    assert blocks["data"] == "# header\ndata:\n  dataset: digits\n"


def test_sections_are_copied_verbatim_and_parse_back():
    new = "data:\n  dataset: cifar100\n"
    text = append_sections(new, yaml.safe_load(new), OLD, yaml.safe_load(OLD), ("sensitivity",))
    assert text.endswith("# how sensitive\nsensitivity:\n  taus: [1, 2]   # two values\n")
    expected = {"data": {"dataset": "cifar100"}, "sensitivity": {"taus": [1, 2]}}
    assert readable_mapping(text) == expected


def test_text_that_would_not_parse_back_is_dumped_instead():
    old = "sensitivity: &s\n  taus: [1]\nother: *s\n"  # the anchor stays behind in `other`
    new = "data: {}\n"
    text = append_sections(new, {"data": {}}, old, yaml.safe_load(old), ("other",))
    assert readable_mapping(text) == {"data": {}, "other": {"taus": [1]}}


def test_nothing_to_carry_and_unreadable_files():
    assert append_sections("a: 1\n", {"a": 1}, OLD, {}, ()) == "a: 1\n"
    assert readable_mapping("") == {} and readable_mapping("[1, 2]") == {}
    assert readable_mapping("a: [") == {}
