"""Intervals end to end in the model code: training stores the calibration in model.pt and
model.json, the Predictor applies it to every prediction, and a checkpoint without one
(older models, or too few validation studies) still predicts, with no interval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.intervals import IntervalModel, calibrate
from training.model import load_checkpoint, save_checkpoint, model_from_checkpoint
from training.predict import Predictor


def hand(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size)).astype(np.float32)


def test_a_checkpoint_without_calibration_predicts_without_an_interval(tiny_model, one_thread):
    metadata = json.loads(tiny_model.with_suffix(".json").read_text())
    assert "interval" in metadata  # the key is written; 48 studies leave ~7 for validation: too few for 90%
    predictor = Predictor.from_checkpoint(tiny_model, device="cpu")
    assert metadata["interval"] is None and predictor.intervals is None
    old = dict(metadata)
    del old["interval"]  # as written before intervals existed
    model, _ = model_from_checkpoint(tiny_model)
    (prediction,) = Predictor(model, old, "demo-old", predictor.device).predict([hand(0)], ["F"], gradcam=False)
    assert np.isfinite(prediction.bone_age_months)  # a one-epoch model: any number
    assert (prediction.interval_low_months, prediction.interval_high_months, prediction.interval_confidence) == (None,) * 3


def test_the_predictor_applies_the_stored_calibration(tiny_model, tmp_path, one_thread):
    rng = np.random.default_rng(0)
    ages = rng.uniform(0, 228, 600)
    calibration = calibrate(ages + rng.normal(0, 12, 600), ages, male=rng.random(600) < 0.5)
    assert set(calibration["by_sex"]) == {"M", "F"}
    checkpoint = load_checkpoint(tiny_model)
    model, _ = model_from_checkpoint(tiny_model)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, {**checkpoint["metadata"], "interval": calibration})
    assert json.loads(path.with_suffix(".json").read_text())["interval"] == calibration

    predictor = Predictor.from_checkpoint(path, device="cpu")
    predictions = predictor.predict([hand(1), hand(2)], ["F", "M"], gradcam=False)
    model_of_intervals = IntervalModel(calibration)
    for p, male in zip(predictions, (0.0, 1.0)):  # each child's own sex's calibration
        (low,), (high,) = model_of_intervals.bounds([p.bone_age_months], [male])
        assert p.interval_confidence == 0.9
        assert p.interval_low_months == pytest.approx(low) and p.interval_high_months == pytest.approx(high)
        assert 0.0 <= p.interval_low_months <= p.interval_high_months
        assert p.interval_low_months <= max(p.bone_age_months, 0.0)


@pytest.mark.slow
def test_training_stores_a_calibration_from_the_validation_residuals(tmp_path, one_thread):
    from training.synth import generate_dataset
    from training.train import TrainingData, train
    from training.recipes import get_recipe
    from training.inference import predict_months

    data_dir = generate_dataset(tmp_path / "data", 80, size=64, seed=1, progress=False)
    path = train(data_dir, "demo", tmp_path / "run", seed=0, epochs=1, image_size=32, progress=False)
    checkpoint = load_checkpoint(path)
    calibration = checkpoint["metadata"]["interval"]
    assert calibration is not None and calibration["default_confidence"] == 0.9
    assert json.loads(path.with_suffix(".json").read_text())["interval"] == calibration
    # the same numbers again from the saved model and its saved validation split
    metadata = checkpoint["metadata"]
    recipe = get_recipe("demo").with_overrides(image_size=32)
    data = TrainingData.prepare(data_dir, recipe, split=metadata["split"], progress=False,
                                cache_dir=tmp_path / "cache")
    images, male, ages = data.part("val")
    assert calibration["n"] == len(ages) >= 9
    model, _ = model_from_checkpoint(path)
    train_images, train_male, train_ages = data.part("train")  # fill in thin age bands
    assert calibrate(predict_months(model, images, male, tta=recipe.tta), ages, male=male,
                     train_predictions=predict_months(model, train_images, train_male, tta=recipe.tta),
                     train_targets=train_ages, train_male=train_male) == calibration
    assert IntervalModel.from_metadata(metadata).confidence == 0.9
