"""Fig. 3 curves: route.csv parsing, averaging over seeds with the min-max spread, CSV and PNG
output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sakd.report import (
    ReportInputError,
    average_routes,
    parse_route_csv,
    route_csv_text,
    route_png_bytes,
)
from sakd.report.routes import RouteCurve, route_band_csv_text

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


SEED2 = "epoch,spot2,spot3,logits\n1,0.2,0.9,0.8\n2,0.0,0.5,0.4\n3,0.5,0.1,1.0\n"


def test_band_is_the_min_and_max_over_the_seeds_that_reached_each_epoch():
    curve = average_routes([parse_route_csv(t) for t in (SEED0, SEED1, SEED2)])
    assert curve.n_seeds == (3, 3, 2) and curve.max_seeds == 3
    assert curve.series("spot2") == pytest.approx([0.2, 0.2, 0.4])
    assert curve.spread("spot2") == ([0.1, 0.0, 0.3], [0.3, 0.4, 0.5])
    assert curve.spread("spot3") == ([0.5, 0.5, 0.1], [0.9, 0.8, 0.7])
    assert curve.spread("logits") == ([0.7, 0.4, 1.0], [0.9, 1.0, 1.0])
    assert route_band_csv_text(curve).splitlines()[:2] == [
        "epoch,spot,mean,min,max,n_seeds", "1,spot2,0.200000,0.100000,0.300000,3"]
    assert route_band_csv_text(curve).splitlines()[-1] == "3,logits,1.000000,1.000000,1.000000,2"


def test_one_run_is_its_own_band():
    one = parse_route_csv(SEED0)
    assert one.spread("spot3") == (one.series("spot3"), one.series("spot3"))
    assert average_routes([one]).spread("logits") == ([0.9, 1.0, 1.0], [0.9, 1.0, 1.0])
    with pytest.raises(ValueError, match="shape of values"):
        RouteCurve(("a",), (1,), ((0.5,),), (2,), low=((0.1, 0.2),), high=((0.9,),))


def _band_share(png: bytes) -> float:
    """Share of pixels that are a light tint (the 0.2-alpha fill), neither white nor a line."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    tint = (rgb.min(axis=2) >= 180) & (rgb.max(axis=2) - rgb.min(axis=2) >= 20)
    return float(tint.mean())


def test_png_shades_the_spread_over_seeds():
    runs = [parse_route_csv(t) for t in (SEED0, SEED1, SEED2)]
    banded = route_png_bytes(average_routes(runs), "mean over 3 seeds, band: min–max")
    c = average_routes(runs)
    no_band = RouteCurve(c.spots, c.epochs, c.values, (1,) * len(c.epochs))  # same means
    flat = route_png_bytes(no_band, "mean over 3 seeds, band: min–max")
    assert banded != flat
    assert _band_share(banded) > 0.05  # the bands cover a good part of the axes
    assert _band_share(banded) > 10 * max(_band_share(flat), 1e-4)  # the lines alone do not
