"""The post-hoc recalibration (training/recalibration.py): fit on validation predictions,
apply wherever months are predicted."""

import json

import numpy as np
import pytest

from training import recalibration
from training.recipes import Recipe, get_recipe


def _ages(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(6, 228, n), (rng.random(n) < 0.5).astype(np.float32), rng


def test_identity_when_predictions_are_already_calibrated():
    ages, male, rng = _ages()
    predictions = ages + rng.laplace(0, 8, len(ages))
    mapping = recalibration.fit(predictions, ages, male, "linear")
    assert mapping["slope"] == pytest.approx(1.0, abs=0.06)
    assert mapping["intercept"] == pytest.approx(0.0, abs=7)
    exact = recalibration.fit(ages, ages, male, "linear")
    assert (exact["slope"], exact["intercept"]) == pytest.approx((1.0, 0.0), abs=1e-6)
    np.testing.assert_allclose(recalibration.apply(exact, ages, male), ages, atol=1e-3)


def test_recovers_a_known_shrinkage():
    """A model that pulls every prediction halfway to 120 months is stretched back."""
    ages, male, rng = _ages()
    predictions = 120 + 0.5 * (ages - 120) + rng.normal(0, 2, len(ages))
    mapping = recalibration.fit(predictions, ages, male, "linear")
    assert mapping["slope"] == pytest.approx(2.0, rel=0.05)
    assert mapping["intercept"] == pytest.approx(-120.0, abs=8)
    before = np.mean(np.abs(predictions - ages))
    after = np.mean(np.abs(recalibration.apply(mapping, predictions, male) - ages))
    assert after < before / 4


def test_linear_per_sex_fits_each_sex_its_own_line():
    ages, male, rng = _ages(300)
    slope = np.where(male > 0.5, 0.5, 0.8)
    predictions = 120 + slope * (ages - 120)
    mapping = recalibration.fit(predictions, ages, male, "linear-sex")
    assert mapping["by_sex"]["M"]["slope"] == pytest.approx(2.0, rel=0.01)
    assert mapping["by_sex"]["F"]["slope"] == pytest.approx(1.25, rel=0.01)
    np.testing.assert_allclose(recalibration.apply(mapping, predictions, male), ages, atol=0.01)


def test_isotonic_is_monotone_and_clipped():
    ages, male, rng = _ages()
    predictions = 120 + 0.5 * (ages - 120) + rng.normal(0, 5, len(ages))
    mapping = recalibration.fit(predictions, ages, male, "isotonic")
    grid = np.linspace(-50, 400, 500)
    months = recalibration.apply(mapping, grid, np.zeros_like(grid))
    assert np.all(np.diff(months) >= 0)
    assert months.min() >= 0 and months.max() <= 240


def test_apply_clips_to_a_sane_range():
    mapping = {"method": "linear", "intercept": -120.0, "slope": 2.0, "n": 100, "range": [0.0, 240.0]}
    np.testing.assert_array_equal(recalibration.apply(mapping, np.array([20.0, 120.0, 200.0])), [0.0, 120.0, 240.0])


def test_json_round_trip_gives_the_same_months():
    ages, male, rng = _ages()
    predictions = 120 + 0.6 * (ages - 120) + rng.normal(0, 10, len(ages))
    for method in ("linear", "linear-sex", "isotonic"):
        mapping = recalibration.fit(predictions, ages, male, method)
        again = json.loads(json.dumps(mapping))
        np.testing.assert_array_equal(recalibration.apply(again, predictions, male),
                                      recalibration.apply(mapping, predictions, male))


def test_without_a_recalibration_predictions_are_unchanged():
    """Old checkpoints (no "recalibration" in the metadata) and method "none" predict as before."""
    predictions = np.array([3.5, 100.25, 300.0], dtype=np.float32)
    assert recalibration.apply({}.get("recalibration"), predictions, np.ones(3)) is predictions
    assert recalibration.fit(predictions, predictions, None, "none") is None
    assert Recipe.from_dict({"name": "old"}).recalibrate == "none"  # an old checkpoint's recipe


def test_nothing_fitted_on_too_few_studies_or_a_decreasing_line():
    ages, male, _ = _ages(recalibration.MIN_STUDIES - 1)
    assert recalibration.fit(ages, ages, male, "linear") is None
    ages, male, _ = _ages()
    assert recalibration.fit(240 - ages, ages, male, "linear") is None
    with pytest.raises(ValueError):
        recalibration.fit(ages, ages, male, "quadratic")


def test_recipes_choose_a_known_method():
    assert get_recipe("seed").recalibrate == "none"
    for name in ("seed", "default", "large", "demo"):
        assert get_recipe(name).recalibrate in recalibration.METHODS


def test_cross_validation_prefers_the_stretch_on_shrunk_predictions():
    ages, male, rng = _ages(140)
    predictions = 120 + 0.6 * (ages - 120) + rng.normal(0, 10, len(ages))
    scores = recalibration.cross_validate(predictions, ages, male, repeats=3)
    assert scores["linear"]["mae"] < scores["none"]["mae"]


def test_inverse_is_unbiased_at_the_ends_where_linear_is_not():
    """Noisy predictions pulled to the mean: 'linear' (the best guess given the prediction) still
    over-estimates the youngest on average; 'inverse' does not, at a larger overall error."""
    ages, male, rng = _ages(4000)
    predictions = 120 + 0.7 * (ages - 120) + rng.normal(0, 20, len(ages))
    young = ages < 48
    for method, bias in (("linear", 10), ("inverse", None)):
        months = recalibration.apply(recalibration.fit(predictions, ages, male, method), predictions, male)
        signed = float(np.mean(months[young] - ages[young]))
        if bias is None:
            assert abs(signed) < 5
        else:
            assert signed > bias
    inverse = recalibration.fit(predictions, ages, male, "inverse")
    assert inverse["slope"] == pytest.approx(1 / 0.7, rel=0.05)
