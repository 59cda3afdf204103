"""Fig. 3 curves: route.csv parsing, averaging over seeds, CSV and PNG output."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sakd.report import (
    ReportInputError,
    average_routes,
    parse_route_csv,
    route_csv_text,
    route_png_bytes,
)

SEED0 = "epoch,spot2,spot3,logits\n1,0.1,0.5,0.9\n2,0.2,0.6,1.0\n3,0.3,0.7,1.0\n"
SEED1 = "epoch,spot2,spot3,logits\n1,0.3,0.5,0.7\n2,0.4,0.8,1.0\n"


def test_parse_keeps_spot_names_and_values():
    curve = parse_route_csv(SEED0)
    assert curve.spots == ("spot2", "spot3", "logits")
    assert curve.epochs == (1, 2, 3)
    assert curve.series("logits") == [0.9, 1.0, 1.0]


def test_average_is_per_epoch_over_the_runs_that_reached_it():
    mean = average_routes([parse_route_csv(SEED0), parse_route_csv(SEED1)])
    assert mean.epochs == (1, 2, 3)
    assert mean.n_seeds == (2, 2, 1)
    assert mean.series("spot2") == pytest.approx([0.2, 0.3, 0.3])
    assert mean.series("spot3") == pytest.approx([0.5, 0.7, 0.7])
    assert mean.series("logits") == pytest.approx([0.8, 1.0, 1.0])


def test_csv_round_trips_in_the_route_layout():
    mean = average_routes([parse_route_csv(SEED0), parse_route_csv(SEED1)])
    text = route_csv_text(mean)
    assert text.splitlines()[:2] == ["epoch,spot2,spot3,logits", "1,0.200000,0.500000,0.800000"]
    again = parse_route_csv(text)
    for spot in mean.spots:
        assert again.series(spot) == pytest.approx(mean.series(spot))


def test_runs_with_different_spots_are_refused():
    other = parse_route_csv("epoch,spot3,logits\n1,0.5,0.5\n")
    with pytest.raises(ReportInputError, match=r"b\.csv"):
        average_routes([parse_route_csv(SEED0), other], ["a.csv", "b.csv"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spot2,logits\n1,0.5\n", "header"),
        ("epoch,spot2\n1,1.5\n", r"route.csv:2: 1.5 is not a probability"),
        ("epoch,spot2\n1,0.5,0.1\n", "expected 2 columns"),
        ("epoch,spot2\n1,abc\n", "not a number"),
        ("epoch,spot2\n1.5,0.5\n", "whole number"),
    ],
)
def test_bad_route_files_name_the_line(text, message):
    with pytest.raises(ReportInputError, match=message):
        parse_route_csv(text, source="route.csv")


def test_png_is_a_real_image_and_deterministic():
    curve = average_routes([parse_route_csv(SEED0), parse_route_csv(SEED1)])
    data = route_png_bytes(curve, "resnet56 → resnet20, pkt")
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.width > 300 and image.height > 200
    assert route_png_bytes(curve, "resnet56 → resnet20, pkt") == data
