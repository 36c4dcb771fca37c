"""Prediction intervals (training/intervals.py): Mondrian split-conformal by true age band
(label-conditional), calibrated with crepes; numpy only, no torch."""

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


def test_bands_of_the_age():
    months = np.array([0, 47.9, 48, 95.9, 96, 143.9, 144, 179.9, 180, 300])
    assert band_index(months).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(BAND_EDGES_YEARS) == 5


def half_width_at(calibration: dict, months, level: str = "0.9") -> np.ndarray:
    knots = [entry["half_width_months"] for entry in calibration["levels"][level]["bands"]]
    return np.interp(months, calibration["band_centres_months"], knots)


def test_every_band_of_the_calibration_set_is_covered_at_its_conformal_rank():
    predictions, ages = heteroscedastic(1000, seed=0)
    calibration = calibrate(predictions, ages)
    assert calibration["taxonomy"] == "true age band" and calibration["shape"] == "linear between band centres"
    assert calibration["band_centres_months"] == [24.0, 72.0, 120.0, 162.0, 204.0]
    bands = calibration["levels"]["0.9"]["bands"]
    residuals, index = np.abs(ages - predictions), band_index(ages)
    covered = residuals <= half_width_at(calibration, ages) + 1e-3  # the knots are stored to 0.001 months
    for b, entry in enumerate(bands):
        n = int((index == b).sum())
        assert entry["n"] == n and entry["source"] == "validation"
        rank = math.ceil((n + 1) * 0.9)  # split-conformal: the k-th smallest residual of the band
        assert rank <= covered[index == b].sum() <= rank + 1, (entry, covered[index == b].sum())
    widths = [entry["half_width_months"] for entry in bands]
    assert widths[0] < widths[1] < widths[2] and widths[0] < widths[4], "adaptive: wider where errors are larger"


def test_the_interval_is_the_set_of_ages_the_calibration_accepts():
    calibration = calibrate(*regressing_to_the_mean(3000, seed=11))
    model = IntervalModel(calibration)
    predictions = np.linspace(0, 240, 481)
    low, high = model.bounds(predictions)
    for p, lo, hi in zip(predictions, low, high):
        inside = np.linspace(lo, hi, 50)
        assert np.all(np.abs(inside - p) <= half_width_at(calibration, inside) + 1e-6)  # one interval, all accepted
        assert abs(hi - p) == pytest.approx(half_width_at(calibration, hi), abs=1e-6)  # it ends where h ends
        if lo > 0:
            assert abs(p - lo) == pytest.approx(half_width_at(calibration, lo), abs=1e-6)


def test_an_adolescent_predicted_too_young_is_not_cut_off_at_the_band_edge():
    """Narrow 12-15 y and wide 15+ y widths: with piecewise-constant widths a prediction of
    155 months had a separate 15+ y segment, and the interval shown stopped at 170 months."""
    knots = [30.0, 14.0, 18.0, 15.2, 33.3]
    calibration = {"taxonomy": "true age band", "shape": "linear between band centres",
                   "band_centres_months": [24.0, 72.0, 120.0, 162.0, 204.0], "default_confidence": 0.9,
                   "levels": {"0.9": {"bands": [{"half_width_months": k} for k in knots]}}}
    low, high = IntervalModel(calibration).bounds(np.array([155.0]))
    assert 155 + 15.2 < high[0] < 155 + 33.3
    assert high[0] - 155 == pytest.approx(np.interp(high[0], [162, 204], [15.2, 33.3]))
    legacy = dict(calibration, join_gap_months=6.0)  # a checkpoint of the piecewise-constant method
    del legacy["shape"], legacy["band_centres_months"]
    old_low, old_high = IntervalModel(legacy).bounds(np.array([155.0]))
    assert old_high[0] == pytest.approx(155 + 15.2)  # as it was calibrated: the 15+ y segment left out


def test_coverage_on_fresh_data_is_near_nominal_in_every_band():
    calibration = calibrate(*heteroscedastic(2000, seed=1))
    predictions, ages = heteroscedastic(4000, seed=2)
    low, high = IntervalModel(calibration).bounds(predictions)
    assert np.all(low <= np.maximum(predictions, 0)) and np.all(predictions <= high)  # around it, clipped at 0
    rows = coverage_table(predictions, ages, low, high, {"band": band_index(ages)})
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


def regressing_to_the_mean(n: int, seed: int):
    """Ages distributed like the RSNA set's (few under 4 y or over 15 y) and a model that
    compresses the ends: young children predicted too old, adolescents too young."""
    rng = np.random.default_rng(seed)
    ages = np.clip(rng.normal(127, 41, n), 1, 228)
    predictions = 127 + 0.8 * (ages - 127) + rng.normal(0, 10, n)
    return predictions, ages


def test_thin_end_bands_borrow_scaled_training_residuals_and_are_covered():
    val_p, val_a = regressing_to_the_mean(140, seed=5)  # a 15% validation split: thin at the ends
    train_p, train_a = regressing_to_the_mean(650, seed=6)
    calibration = calibrate(val_p, val_a, train_predictions=train_p, train_targets=train_a)
    sources = {b["band"]: b["source"] for b in calibration["levels"]["0.9"]["bands"]}
    assert sources["0-4 y"] == sources["15+ y"] == "validation + training (scaled)"
    assert sources["8-12 y"] == "validation"
    assert calibration["training_residual_scale"] > 0
    fresh_p, fresh_a = regressing_to_the_mean(20000, seed=7)
    low, high = IntervalModel(calibration).bounds(fresh_p)
    covered = (low <= fresh_a) & (fresh_a <= high)
    pooled_ends = IntervalModel(calibrate(val_p, val_a)).bounds(fresh_p)  # nothing to borrow: pooled widths
    covered_pooled = (pooled_ends[0] <= fresh_a) & (fresh_a <= pooled_ends[1])
    for b in range(5):
        in_band = band_index(fresh_a) == b
        assert covered[in_band].mean() > 0.84, b  # the ends too (17 calibration studies under 4 y: over-covered)
    young = band_index(fresh_a) == 0
    assert covered_pooled[young].mean() < covered[young].mean()


def test_a_calibration_by_the_predicted_band_from_an_older_checkpoint_still_applies():
    old = {"method": "split-conformal, Mondrian by predicted age band (crepes ConformalRegressor)",
           "default_confidence": 0.9, "levels": {"0.9": {"pooled_half_width_months": 20.0, "bands": [
               {"band": label, "n": 40, "pooled": False, "half_width_months": w}
               for label, w in zip(["0-4 y", "4-8 y", "8-12 y", "12-15 y", "15+ y"], [5, 10, 15, 20, 25])]}}}
    low, high = IntervalModel(old).bounds(np.array([3.0, 100.0, 200.0]))
    assert low.tolist() == [0.0, 85.0, 175.0] and high.tolist() == [8.0, 115.0, 225.0]


def sexes_that_err_differently(n: int, seed: int):
    """Girls' errors three times the boys' in 12-15 y, the boys' three times the girls' in 4-8 y
    (the pattern of the real sample's one-for-both calibration), alike elsewhere."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(0, 228, n)
    male = (rng.random(n) < 0.5).astype(float)
    sd = np.full(n, 12.0)
    teen, child = band_index(ages) == 3, band_index(ages) == 1
    sd[teen] = np.where(male[teen] > 0, 6.0, 18.0)
    sd[child] = np.where(male[child] > 0, 18.0, 6.0)
    return ages + rng.normal(0, 1, n) * sd, ages, male


def test_each_sex_is_calibrated_apart_when_its_sex_is_known():
    predictions, ages, male = sexes_that_err_differently(4000, seed=2)
    calibration = calibrate(predictions, ages, male=male)
    assert set(calibration["by_sex"]) == {"M", "F"} and "each sex apart" in calibration["method"]
    assert calibration["by_sex"]["F"]["n"] == int((male == 0).sum())
    fresh_p, fresh_a, fresh_m = sexes_that_err_differently(8000, seed=3)
    model = IntervalModel(calibration)
    for known_sex in (True, False):
        low, high = model.bounds(fresh_p, fresh_m if known_sex else None)
        covered = (low <= fresh_a) & (fresh_a <= high)
        cells = [covered[(band_index(fresh_a) == b) & (fresh_m == s)].mean() for b in (1, 3) for s in (0, 1)]
        if known_sex:  # every sex x band cell near 90%
            assert all(abs(c - 0.9) < 0.04 for c in cells), cells
        else:  # one calibration for both: the noisier sex of each band under-covered
            assert min(cells) < 0.86 and max(cells) > 0.97, cells
    # interval() takes the sex too
    assert model.interval(150.0, male=True).high_months < model.interval(150.0, male=False).high_months


def test_one_sex_with_too_few_studies_keeps_the_calibration_of_both():
    predictions, ages, male = sexes_that_err_differently(400, seed=5)
    male[:] = 0.0
    male[:5] = 1.0  # five boys: no 90% interval of their own
    calibration = calibrate(predictions, ages, male=male)
    assert "by_sex" not in calibration
    model = IntervalModel(calibration)
    np.testing.assert_array_equal(model.bounds(predictions, male)[0], model.bounds(predictions)[0])
