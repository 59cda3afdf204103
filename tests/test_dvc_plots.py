"""`dvc plots show` on a copy of the project (issue 22): the page it writes draws without a
network (vega, vega-lite and vega-embed inlined from .dvc/plots/offline.html, no CDN script),
every chart's title names its pair and distiller, the strategies chart zooms its y-axis to the
data, and Fig. 4's trials are points."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from sakd.report import RouteCurve
from sakd.report.curves import chart_title, spots_csv_text, strategies_csv_text
from sakd.report.val_curves import band
from tests.conftest import REPO, on_digits
from tests.projects import clean_env, copy_project, sh

TEMPLATE = REPO / ".dvc" / "plots" / "offline.html"
LIBRARIES = ("vega 5.33.1", "vega-lite 5.23.0", "vega-embed 6.29.0")


def _write_report_plots(root: Path) -> None:
    """What the report stage writes for one pair and two distillers (10 epochs)."""
    plots = root / "plots" / "report" / "digits"
    for distiller, gap in (("kd", 0.5), ("at", 1.5)):
        bands = {"adaptive": band([{e: 80 + e + gap for e in range(1, 11)}]),
                 "always": band([{e: 80.0 + e for e in range(1, 11)}])}
        curve = RouteCurve(("spot2", "logits"), (1, 2), ((0.5, 1.0), (0.25, 0.75)), (1, 1))
        title = chart_title("digits", "resnet20", "resnet8", distiller)
        for kind, text in (("strategies", strategies_csv_text(bands, title)),
                           ("spots", spots_csv_text(curve, title))):
            path = plots / kind / f"resnet20-resnet8_{distiller}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def _specs(page: str) -> list[dict]:
    """The Vega-Lite spec of every chart DVC put into the page."""
    return [json.loads(m) for m in re.findall(r"var spec = (\{.*?\});\n", page, re.S)]


def test_the_page_template_inlines_vega_and_holds_dvc_placeholders():
    html = TEMPLATE.read_text(encoding="utf-8")
    assert TEMPLATE.stat().st_size < 2 * 2**20
    assert "{plot_divs}" in html and "{scripts}" not in html  # no CDN scripts added by DVC
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert all(f"/* {lib} " in html for lib in LIBRARIES)
    assert "University of Washington Interactive Data Lab" in html  # the licence travels along
    licences = (TEMPLATE.parent / "offline-LICENSES.txt").read_text(encoding="utf-8")
    assert all(f"{name} (BSD-3-Clause)" in licences for name in ("vega", "vega-lite", "vega-embed"))
    config = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"\[plots\]\s+html_template = plots/offline\.html", config)


def test_dvc_plots_show_writes_an_offline_page_with_titled_zoomed_charts(tmp_path):
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    copy_project(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(on_digits(yaml.safe_load(params.read_text()))))
    env = clean_env()
    sh(["git", "init", "-q"], tmp_path, env)
    _write_report_plots(tmp_path)
    sh(["dvc", "plots", "show"], tmp_path, env)  # the other stages' plots are not there: fine
    page = (tmp_path / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", page), "the page loads a script from elsewhere"
    assert "cdn." not in page and all(f"/* {lib} " in page for lib in LIBRARIES)
    specs = [s for s in _specs(page) if s.get("data", {}).get("name") == "points"]  # ours
    assert len(specs) == 4  # strategies and Fig. 3 for each of kd and at
    charts = {spec["data"]["values"][0]["chart"] for spec in specs}
    assert charts == {"digits: resnet20 → resnet8, kd", "digits: resnet20 → resnet8, at"}
    for spec in specs:  # the title is the data's chart column; its rows all name one chart
        assert "data('points')[0].chart" in spec["title"]["text"]["expr"]
        assert len({row["chart"] for row in spec["data"]["values"]}) == 1
    strategies = [s for s in specs if "hconcat" in s]
    assert len(strategies) == 2
    for spec in strategies:
        assert {row["strategy"] for row in spec["data"]["values"]} == {"adaptive", "always"}
        for panel in spec["hconcat"]:
            assert panel["encoding"]["y"]["scale"] == {"zero": False}  # fitted to the data
            assert panel["encoding"]["color"]["field"] == "strategy"
        assert spec["hconcat"][1]["transform"] == [
            {"filter": "datum.sakd_x >= datum.sakd_last_x / 2"}]  # the late epochs, zoomed


def test_fig4_sweeps_are_drawn_as_points():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["sensitivity"]
    definitions = {k: v for entry in stage["plots"] if isinstance(entry, dict)
                   for k, v in entry.items()}
    for axis in ("beta3", "tau0"):
        assert definitions[f"plots/sensitivity/{axis}.csv"]["template"] == "scatter"
