"""Prediction intervals (training/intervals.py): Mondrian split-conformal by predicted age
band, calibrated with crepes; numpy only, no torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.intervals import (BAND_EDGES_YEARS, IntervalModel, band_index, calibrate,
                                coverage_table)


def heteroscedastic(n: int, seed: int):
    """True ages uniform over 0-19 y; errors growing with age (SD 4 months at birth, ~28 at 19 y)."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(0, 228, n)
    predictions = ages + rng.normal(0, 1, n) * (4 + ages / 9)
    return predictions, ages


def test_bands_of_the_predicted_age():
    months = np.array([0, 47.9, 48, 95.9, 96, 143.9, 144, 179.9, 180, 300])
    assert band_index(months).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(BAND_EDGES_YEARS) == 5


def test_the_stored_half_width_is_the_conformal_quantile_of_each_band():
    predictions, ages = heteroscedastic(1000, seed=0)
    calibration = calibrate(predictions, ages)
    assert calibration["default_confidence"] == 0.9 and calibration["n"] == 1000
    bands = calibration["levels"]["0.9"]["bands"]
    residuals, index = np.abs(ages - predictions), band_index(predictions)
    for b, entry in enumerate(bands):
        r = np.sort(residuals[index == b])
        k = math.ceil((len(r) + 1) * 0.9)  # the split-conformal rank
        assert entry["n"] == len(r) and not entry["pooled"]
        assert entry["half_width_months"] == pytest.approx(r[k - 1], abs=1e-3)
    widths = [entry["half_width_months"] for entry in bands]
    assert widths[0] < widths[1] < widths[2] and widths[0] < widths[4], "adaptive: wider where errors are larger"


def test_coverage_on_fresh_data_is_near_nominal_in_every_band():
    calibration = calibrate(*heteroscedastic(2000, seed=1))
    predictions, ages = heteroscedastic(4000, seed=2)
    low, high = IntervalModel(calibration).bounds(predictions)
    rows = coverage_table(predictions, ages, low, high, {"band": band_index(predictions)})
    for row in rows:
        assert abs(row["coverage"] - 0.9) < 0.04, row
    assert {row["value"] for row in rows if row["group"] == "band"} == {0, 1, 2, 3, 4}


def test_small_bands_use_the_pooled_width_and_too_few_studies_give_no_interval():
    predictions, ages = heteroscedastic(60, seed=3)
    calibration = calibrate(predictions, ages, min_band_size=30)
    level = calibration["levels"]["0.9"]
    assert all(entry["pooled"] for entry in level["bands"])  # 60 over 5 bands: none reaches 30
    assert {entry["half_width_months"] for entry in level["bands"]} == {level["pooled_half_width_months"]}
    assert calibrate(predictions[:7], ages[:7]) is None  # 7 < 9: no finite 90% interval
    assert calibrate([], []) is None


def test_bounds_are_clipped_at_zero_and_other_levels_are_stored():
    calibration = calibrate(*heteroscedastic(1000, seed=4))
    model = IntervalModel(calibration)
    interval = model.interval(2.0)
    assert interval.low_months == 0.0 and interval.high_months > 2.0 and interval.confidence == 0.9
    wide = IntervalModel(calibration, confidence=0.95).interval(120.0)
    narrow = IntervalModel(calibration, confidence=0.8).interval(120.0)
    assert narrow.high_months < model.interval(120.0).high_months < wide.high_months
    with pytest.raises(ValueError, match="no calibration at 0.5"):
        IntervalModel(calibration, confidence=0.5)
    assert IntervalModel.from_metadata({"recipe": {}}) is None  # an old checkpoint: no interval
