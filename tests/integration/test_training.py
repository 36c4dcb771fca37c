"""Training on synthetic data, checkpoints, resume and determinism, Grad-CAM, prediction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.gradcam import GradCamExplainer, mass_in_mask
from core.imageio import decode_image
from training.inference import predict_months
from training.model import load_checkpoint, model_from_checkpoint
from training.predict import Predictor
from training.rsna import load_records
from training.synth import generate_dataset
from training.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def learning_data(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic training set and a separate synthetic held-out set."""
    root = tmp_path_factory.mktemp("learning")
    return (generate_dataset(root / "train", 360, size=128, seed=11, progress=False),
            generate_dataset(root / "held-out", 120, size=128, seed=12, progress=False))


def test_short_training_beats_predicting_the_mean(learning_data, tmp_path, one_thread):
    train_dir, held_out_dir = learning_data
    checkpoint = train(train_dir, "demo", tmp_path, epochs=8, image_size=64, progress=False,
                       cache_dir=tmp_path / "cache")
    predictor = Predictor.from_checkpoint(checkpoint)
    records = load_records(held_out_dir)
    truth = np.array([r.bone_age_months for r in records])
    predicted = np.array([p.bone_age_months for p in predictor.predict(
        [decode_image(r.image_path) for r in records], [r.sex for r in records], gradcam=False)])
    train_ages = np.array([r.bone_age_months for r in load_records(train_dir)])
    mae_of_mean = np.mean(np.abs(truth - train_ages.mean()))
    mae = np.mean(np.abs(truth - predicted))
    assert mae < 0.6 * mae_of_mean, (mae, mae_of_mean)
    metadata = json.loads(checkpoint.with_suffix(".json").read_text())
    assert metadata["synthetic"] is True and metadata["metrics"]["test_n"] > 0


def test_checkpoint_round_trip_without_unpickling_code(tiny_model, synthetic_dataset):
    payload = torch.load(tiny_model, map_location="cpu", weights_only=True)  # refuses pickled code
    assert payload["format"] == "boneage-checkpoint-v1"
    checkpoint = load_checkpoint(tiny_model)
    metadata = checkpoint["metadata"]
    assert metadata == json.loads(tiny_model.with_suffix(".json").read_text())
    assert set(metadata["split"]) == {"train", "val", "test"}
    assert metadata["preprocessing"]["image_size"] == 64 and metadata["recipe"]["name"] == "demo"

    model, _ = model_from_checkpoint(tiny_model)
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    male = np.array([1, 0, 1], dtype=np.float32)
    again, _ = model_from_checkpoint(tiny_model)
    np.testing.assert_array_equal(predict_months(model, images, male, tta=True),
                                  predict_months(again, images, male, tta=True))
    assert metadata["metrics"]["test_mae"] == pytest.approx(
        _test_mae_from_scratch(model, metadata, synthetic_dataset), rel=1e-4)


def _test_mae_from_scratch(model, metadata, data_dir) -> float:
    """The stored test MAE recomputed from the saved split, decoding the images anew."""
    from training.preprocess import Preprocessing, preprocess

    records = {r.id: r for r in load_records(data_dir)}
    test = [records[i] for i in metadata["split"]["test"]]
    config = Preprocessing(**metadata["preprocessing"])
    squares = np.stack([preprocess(decode_image(r.image_path), config) for r in test])
    predicted = predict_months(model, squares, np.array([r.male for r in test], dtype=np.float32),
                               tta=metadata["recipe"]["tta"])
    return float(np.mean(np.abs(predicted - np.array([r.bone_age_months for r in test]))))


def test_training_is_deterministic_and_resumable(synthetic_dataset, tmp_path, one_thread):
    kwargs = dict(image_size=48, limit=32, progress=False, cache_dir=tmp_path / "cache", seed=5)
    straight = train(synthetic_dataset, "demo", tmp_path / "straight", epochs=2, **kwargs)
    twice = train(synthetic_dataset, "demo", tmp_path / "twice", epochs=2, **kwargs)
    first_half = train(synthetic_dataset, "demo", tmp_path / "resumed", epochs=1, **kwargs)
    assert first_half.is_file()
    resumed = train(synthetic_dataset, "demo", tmp_path / "resumed", epochs=2, resume=True, **kwargs)

    def weights(model_path):  # the live weights after the last epoch, not the best epoch's
        return torch.load(model_path.parent / "last.pt", weights_only=True)["model"]

    for name, tensor in weights(straight).items():
        assert torch.equal(tensor, weights(twice)[name]), f"not deterministic: {name}"
        assert torch.equal(tensor, weights(resumed)[name]), f"resume differs: {name}"
    history = json.loads(resumed.with_suffix(".json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_gradcam_shapes_and_batching(tiny_model):
    model, _ = model_from_checkpoint(tiny_model)
    explainer = GradCamExplainer(model)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (4, 64, 64), dtype=np.uint8)
    male = np.array([1, 0, 0, 1], dtype=np.float32)
    batch = explainer.heatmaps(images, male)
    assert batch.shape == (4, 64, 64) and batch.dtype == np.float32
    assert batch.min() >= 0 and batch.max() <= 1 + 1e-6
    one_by_one = np.concatenate([explainer.heatmaps(images[i : i + 1], male[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-4)


def test_mass_in_mask():
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[0, 0], heatmap[3, 3] = 3.0, 1.0
    mask = np.zeros((4, 4), dtype=np.float32)
    mask[0, 0] = 1
    assert mass_in_mask(heatmap, mask) == pytest.approx(0.75)
    assert mass_in_mask(np.zeros((4, 4)), mask) == 0.0


def test_predictor_batches_like_single_images(tiny_model, synthetic_dataset):
    predictor = Predictor.from_checkpoint(tiny_model)
    records = load_records(synthetic_dataset)[:3]
    images = [decode_image(r.image_path) for r in records]
    sexes = [r.sex for r in records]
    batch = predictor.predict(images, sexes)
    single = [predictor.predict([image], [sex])[0] for image, sex in zip(images, sexes)]
    for b, s in zip(batch, single):
        assert b.bone_age_months == pytest.approx(s.bone_age_months, abs=1e-3)
        assert b.stage == s.stage and b.heatmap.shape == (64, 64)
        assert b.overlay_png.startswith(b"\x89PNG")
    assert predictor.model_version.startswith("demo-") and predictor.synthetic


def test_sex_input_changes_the_prediction(tiny_model, synthetic_dataset):
    predictor = Predictor.from_checkpoint(tiny_model)
    image = decode_image(load_records(synthetic_dataset)[0].image_path)
    boy, girl = predictor.predict([image, image], ["M", "F"], gradcam=False)
    assert boy.bone_age_months != girl.bone_age_months


def test_predict_command(tiny_model, synthetic_dataset, tmp_path):
    image = load_records(synthetic_dataset)[0].image_path
    heatmap = tmp_path / "heat.png"
    result = subprocess.run(
        [sys.executable, "-m", "boneage.cli", "predict", str(image), "--sex", "F", "--model", str(tiny_model),
         "--heatmap", str(heatmap), "--chronological-age", "120"],
        capture_output=True, text=True, check=True)
    expected = Predictor.from_checkpoint(tiny_model).predict([decode_image(image)], ["F"], gradcam=False)[0]
    assert f"bone age: {expected.bone_age_months:.1f} months" in result.stdout
    assert f"stage:    {expected.stage}" in result.stdout
    assert "not for clinical use" in result.stdout and "SD" in result.stdout
    assert heatmap.read_bytes().startswith(b"\x89PNG")


def test_predict_command_refuses_a_bad_image(tiny_model, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    result = subprocess.run([sys.executable, "-m", "boneage.cli", "predict", str(bogus), "--sex", "M",
                             "--model", str(tiny_model)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "not an image we can read" in result.stderr and "Traceback" not in result.stderr


def test_training_precision_is_chosen_by_setting_and_recorded(learning_data, tmp_path, one_thread, monkeypatch):
    """BONEAGE_TRAIN_PRECISION=bf16 trains under bfloat16 autocast on a CPU (any CPU: where it has
    no bfloat16 units it is slow, not wrong); the checkpoint records the choice."""
    train_dir, _ = learning_data
    monkeypatch.setenv("BONEAGE_TRAIN_PRECISION", "bf16")
    checkpoint = train(train_dir, "demo", tmp_path / "bf16", epochs=1, image_size=48, limit=96, progress=False)
    metadata = json.loads(checkpoint.with_suffix(".json").read_text())
    assert metadata["training_precision"] == {"dtype": "bf16", "channels_last": True}
    assert np.isfinite(metadata["metrics"]["val_mae"]) and np.isfinite(metadata["metrics"]["test_mae"])
    monkeypatch.setenv("BONEAGE_TRAIN_PRECISION", "fp32")
    float32 = train(train_dir, "demo", tmp_path / "fp32", epochs=1, image_size=48, limit=96, progress=False)
    metadata = json.loads(float32.with_suffix(".json").read_text())
    assert metadata["training_precision"] == {"dtype": "fp32", "channels_last": True}
    # the same seed, data and layout: only the autocast differs, and it changed the weights
    bf16_weights, fp32_weights = load_checkpoint(checkpoint)["state_dict"], load_checkpoint(float32)["state_dict"]
    assert any(not torch.equal(bf16_weights[k], fp32_weights[k]) for k in bf16_weights)
