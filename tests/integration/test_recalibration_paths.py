"""The post-hoc recalibration (training/recalibration.py) end to end: training fits it on the
validation split and stores it before the interval is calibrated, and every path that predicts
months from the checkpoint - the Predictor (`boneage predict` and the workers), `boneage
evaluate`, the benchmarks' predict_months on a loaded checkpoint - gives the same recalibrated
months; a checkpoint without one predicts as before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.imageio import decode_image
from training import recalibration
from training.evaluate import evaluate
from training.inference import predict_months
from training.intervals import calibrate
from training.model import BoneAgeNet, load_checkpoint, model_from_checkpoint, save_checkpoint
from training.predict import Predictor
from training.recipes import get_recipe
from training.train import TrainingData, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recalibrated_model(synthetic_dataset, tmp_path_factory):
    """A one-epoch demo model whose recipe recalibrates (isotonic: a map that is not a line, and
    one that always fits); 48 studies leave ~7 for validation, so the minimum is lowered."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    minimum, recalibration.MIN_STUDIES = recalibration.MIN_STUDIES, 3
    try:
        recipe = get_recipe("demo").with_overrides(recalibrate="isotonic")
        path = train(synthetic_dataset, recipe, tmp_path_factory.mktemp("recalibrated"), epochs=1, image_size=64,
                     limit=48, progress=False)
    finally:
        recalibration.MIN_STUDIES = minimum
        torch.set_num_threads(threads)
    return path


def _raw_and_expected(path, data, part):
    model, metadata = model_from_checkpoint(path)
    mapping = metadata["recalibration"]
    images, male, _ = data.part(part)
    model.recalibration = None  # the network's output, not recalibrated
    raw = predict_months(model, images, male, tta=True)
    return raw, recalibration.apply(mapping, raw, male)


def test_every_path_gives_the_same_recalibrated_months(recalibrated_model, synthetic_dataset, tmp_path):
    metadata = json.loads(recalibrated_model.with_suffix(".json").read_text())
    mapping = metadata["recalibration"]
    assert mapping["method"] == "isotonic" and mapping["n"] == len(metadata["split"]["val"])
    data = TrainingData.prepare(synthetic_dataset, get_recipe("demo").with_overrides(image_size=64),
                                split=metadata["split"], progress=False)
    raw, expected = _raw_and_expected(recalibrated_model, data, "test")
    assert not np.allclose(raw, expected)  # the map does change the months
    _, _, ages = data.part("test")

    # training's own test metrics are those of the recalibrated months
    assert metadata["metrics"]["test_mae"] == pytest.approx(float(np.mean(np.abs(expected - ages))), rel=1e-4)
    assert metadata["metrics"]["test_mae_before_recalibration"] == pytest.approx(
        float(np.mean(np.abs(raw - ages))), rel=1e-4)

    # a loaded checkpoint (evaluation, the benchmarks) applies it in predict_months
    model, _ = model_from_checkpoint(recalibrated_model)
    images, male, _ = data.part("test")
    np.testing.assert_allclose(predict_months(model, images, male, tta=True), expected, atol=1e-3)

    # the Predictor (the CLI and the workers) on the decoded films
    predictor = Predictor.from_checkpoint(recalibrated_model, device="cpu")
    test_records = [data.records[i] for i in data.indices["test"]]
    films = [decode_image(r.image_path) for r in test_records]
    predictions = predictor.predict(films, ["M" if r.male else "F" for r in test_records], gradcam=False)
    np.testing.assert_allclose([p.bone_age_months for p in predictions], expected, atol=1e-3)

    # boneage evaluate
    metrics = evaluate(recalibrated_model, synthetic_dataset, tmp_path / "report", progress=False)
    assert metrics["regression"]["mae"] == pytest.approx(metadata["metrics"]["test_mae"], rel=1e-4)


def test_the_interval_is_calibrated_on_the_recalibrated_months(recalibrated_model, synthetic_dataset):
    metadata = json.loads(recalibrated_model.with_suffix(".json").read_text())
    data = TrainingData.prepare(synthetic_dataset, get_recipe("demo").with_overrides(image_size=64),
                                split=metadata["split"], progress=False)
    _, val = _raw_and_expected(recalibrated_model, data, "val")
    _, train_months = _raw_and_expected(recalibrated_model, data, "train")
    (_, val_male, val_ages), (_, train_male, train_ages) = data.part("val"), data.part("train")
    again = calibrate(val, val_ages, male=val_male, train_predictions=train_months, train_targets=train_ages,
                      train_male=train_male)
    assert json.loads(json.dumps(again)) == metadata["interval"]


def test_a_checkpoint_without_recalibration_predicts_the_raw_output(tiny_model, synthetic_dataset, tmp_path,
                                                                   one_thread):
    model, metadata = model_from_checkpoint(tiny_model)
    assert metadata["recalibration"] is None and model.recalibration is None  # recipe "demo": none
    checkpoint = load_checkpoint(tiny_model)
    old = dict(checkpoint["metadata"])
    del old["recalibration"]  # as written before recalibration existed
    reloaded = BoneAgeNet(True)
    reloaded.load_state_dict(checkpoint["state_dict"])
    save_checkpoint(tmp_path / "old.pt", reloaded, old)
    old_model, _ = model_from_checkpoint(tmp_path / "old.pt")
    assert old_model.recalibration is None
    data = TrainingData.prepare(synthetic_dataset, get_recipe("demo").with_overrides(image_size=64),
                                split=metadata["split"], progress=False)
    images, male, ages = data.part("test")
    months = predict_months(old_model, images, male, tta=True)
    np.testing.assert_array_equal(months, predict_months(model, images, male, tta=True))
    assert metadata["metrics"]["test_mae"] == pytest.approx(float(np.mean(np.abs(months - ages))), rel=1e-4)
    assert "test_mae_before_recalibration" not in metadata["metrics"]
