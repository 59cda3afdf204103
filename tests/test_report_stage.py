"""The report stage on fake pipeline outputs: files found, outputs written, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.report import run_report

PAIR = "resnet56-resnet20"
ROUTES = {
    0: "epoch,spot2,spot3,logits\n1,0.1,0.5,0.9\n2,0.2,0.6,1.0\n",
    1: "epoch,spot2,spot3,logits\n1,0.3,0.7,0.7\n2,0.4,0.8,1.0\n",
}


def _run(distiller, strategy, seed, top1):
    return f"{PAIR}/{distiller}-{strategy}/seed{seed}", {
        "teacher": "resnet56", "student": "resnet20", "distiller": distiller,
        "strategy": strategy, "seed": seed, "top1": top1, "top5": 90.0,
        "val_top1": top1, "best_val_top1": top1 + 0.5, "best_epoch": 1, "epochs": 2,
    }


def make_project(root: Path, dataset: str = "cifar100", routes: bool = True) -> None:
    students = dict(
        [_run("pkt", "always", s, 70.0 + s) for s in (0, 1)]
        + [_run("pkt", "adaptive", s, 71.0 + s) for s in (0, 1)]
    )
    evaluate = {"teachers": {"resnet56": {"top1": 72.0, "top5": 92.0},
                             "resnet20": {"top1": 69.0, "top5": 91.0}},
                "students": students}
    path = root / "metrics" / "evaluate" / f"{dataset}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(evaluate))
    for key, run in students.items():  # every run's curves: the validation chart reads them
        folder = root / "plots" / "distill" / dataset / key
        folder.mkdir(parents=True)
        top = run["top1"]
        (folder / "curves.csv").write_text(f"epoch,val/top1\n1,{top - 10}\n2,{top}\n")
    if routes:
        for seed, text in ROUTES.items():
            folder = root / "plots" / "distill" / dataset / PAIR / f"pkt-adaptive/seed{seed}"
            (folder / "route.csv").write_text(text)


def report(root: Path, dataset: str = "cifar100") -> str:
    run_report(root, dataset, Path("reports/results.md"), Path(f"plots/report/{dataset}"))
    return (root / "reports" / "results.md").read_text()


def test_report_writes_tables_and_route_plots(tmp_path):
    make_project(tmp_path)
    text = report(tmp_path)
    assert "| PKT | 70.50 ± 0.71 (n=2; paper 70.72) | 71.50 ± 0.71 (n=2; paper 71.56) |" in text
    plots = tmp_path / "plots" / "report" / "cifar100"
    png, csv = plots / f"route_{PAIR}_pkt.png", plots / f"route_{PAIR}_pkt.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert csv.read_text().splitlines() == [
        "epoch,spot2,spot3,logits", "1,0.200000,0.600000,0.800000", "2,0.300000,0.700000,1.000000",
    ]
    band = (plots / f"route_{PAIR}_pkt_band.csv").read_text().splitlines()
    assert band[:2] == ["epoch,spot,mean,min,max,n_seeds",
                        "1,spot2,0.200000,0.100000,0.300000,2"]  # the shaded spread per spot
    # links are relative to the report, so they work in a clone and on GitHub
    assert f"(../plots/report/cifar100/route_{PAIR}_pkt.png)" in text
    assert f"(../plots/report/cifar100/route_{PAIR}_pkt.csv)" in text
    assert not list(plots.glob("*.tmp")) and not list((tmp_path / "reports").glob("*.tmp"))
    # validation top-1 per epoch: one band per strategy, mean and min-max over the seeds
    assert (plots / f"val_{PAIR}_pkt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (plots / f"val_{PAIR}_pkt.csv").read_text().splitlines() == [
        "strategy,epoch,val_top1,val_top1_min,val_top1_max",
        "adaptive,1,61.5000,61.0000,62.0000", "adaptive,2,71.5000,71.0000,72.0000",
        "always,1,60.5000,60.0000,61.0000", "always,2,70.5000,70.0000,71.0000",
    ]
    assert f"(../plots/report/cifar100/val_{PAIR}_pkt.png)" in text


def test_non_paper_dataset_has_no_paper_column(tmp_path):
    make_project(tmp_path, dataset="digits")
    text = report(tmp_path, "digits")
    assert "| PKT | 70.50 ± 0.71 (n=2) | 71.50 ± 0.71 (n=2) | +1.00 |" in text
    assert "(paper " not in text and "; paper " not in text


def test_missing_evaluate_file_names_it_and_its_stage(tmp_path):
    with pytest.raises(UserError) as info:
        report(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "metrics" / "evaluate" / "cifar100.json") in message
    assert "dvc repro evaluate" in message
    assert not (tmp_path / "reports" / "results.md").exists()


def test_missing_route_file_names_it_and_its_stage(tmp_path):
    make_project(tmp_path, routes=False)
    with pytest.raises(UserError, match=r"pkt-adaptive/seed0/route\.csv.*dvc repro distill"):
        report(tmp_path)


def test_malformed_evaluate_file_is_a_user_error(tmp_path):
    make_project(tmp_path)
    path = tmp_path / "metrics" / "evaluate" / "cifar100.json"
    path.write_text(json.dumps({"teachers": {}}))
    with pytest.raises(UserError, match="students"):
        report(tmp_path)


def test_sensitivity_outputs_are_linked_when_present(tmp_path):
    make_project(tmp_path)
    assert "dvc repro sensitivity" in report(tmp_path)
    (tmp_path / "reports" / "sensitivity.md").write_text("# Sensitivity\n")
    (tmp_path / "metrics" / "sensitivity.json").write_text("{}")
    text = report(tmp_path)
    assert "[Sensitivity report](sensitivity.md)" in text
    assert "[Sensitivity metrics](../metrics/sensitivity.json)" in text
