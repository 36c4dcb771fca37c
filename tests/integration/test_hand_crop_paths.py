"""The hand crop is part of the preprocessing stored in the checkpoint (issue 12): training,
evaluation and the Predictor (the CLI's `boneage predict` and the workers' assessments) make
the very same input square from the same file."""

from __future__ import annotations

import numpy as np
import pytest

from core.imageio import decode_image
from helpers import RSNA_SAMPLE
from training.cache import load_image_array
from training.model import build_model, save_checkpoint
from training.predict import Predictor
from training.preprocess import Preprocessing, crop_region, preprocess
from training.recipes import get_recipe
from training.rsna import load_records
from training.train import TrainingData

SIZE = 64


def _paths_agree(data_dir, tmp_path, limit=None):
    recipe = get_recipe("default").with_overrides(image_size=SIZE, init="random")
    assert recipe.crop == "hand"  # default and large both crop
    data = TrainingData.prepare(data_dir, recipe, limit=limit, progress=False, cache_dir=tmp_path / "train-cache")

    # a checkpoint written as training writes it, loaded as the CLI and the workers load it
    metadata = {"recipe": recipe.to_dict(), "preprocessing": Preprocessing.from_recipe(recipe).__dict__}
    save_checkpoint(tmp_path / "model.pt", build_model(recipe, 120.0, 40.0), metadata)
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt", device="cpu")
    assert predictor.preprocessing == Preprocessing(SIZE, "letterbox", "clahe", "hand")

    films = [decode_image(r.image_path) for r in data.records]
    served = predictor.preprocess(films)  # Predictor.predict's squares
    evaluated = load_image_array(data.records, predictor.preprocessing, tmp_path / "eval-cache", progress=False)
    np.testing.assert_array_equal(served, data.images)
    np.testing.assert_array_equal(evaluated, data.images)

    # the crop did cut: the whole-film squares differ, and a hand was located on most films
    whole = np.stack([preprocess(film, Preprocessing(SIZE, "letterbox", "clahe", "none")) for film in films])
    assert not np.array_equal(whole, data.images)
    located = [crop_region(film, predictor.preprocessing) is not None for film in films]
    assert np.mean(located) >= 0.9, f"a hand was located on {np.mean(located):.0%} of the films"


def test_training_evaluation_and_prediction_crop_identically_synthetic(synthetic_dataset, tmp_path):
    _paths_agree(synthetic_dataset, tmp_path, limit=16)


def test_training_evaluation_and_prediction_crop_identically_real(tmp_path):
    if not (RSNA_SAMPLE / "boneage-training-dataset.csv").is_file():
        pytest.skip(f"the real RSNA sample is not at {RSNA_SAMPLE} (it is never copied into the repository)")
    _paths_agree(RSNA_SAMPLE, tmp_path, limit=24)


def test_checkpoints_from_before_the_crop_mean_the_whole_film():
    old = {"image_size": 160, "resize_mode": "letterbox", "intensity": "percentile"}
    assert Preprocessing(**old).crop == "none"
    assert get_recipe("seed").crop == "none"
    assert get_recipe("default").crop == "hand" and get_recipe("large").crop == "hand"


@pytest.mark.parametrize("crop", ["none", "hand"])
def test_the_predictions_hand_box_is_the_hand_in_the_heatmaps_frame(synthetic_dataset, tmp_path, crop):
    """Prediction.hand_box (stored and drawn over the heatmap on the result page) is the located
    hand's box moved through the model's own preprocessing: it matches a filled box mask sent
    through that geometry, for the whole film and for the hand crop; heatmap_in_hand is the
    heatmap's mass inside it."""
    from core.hand import locate_hand
    from training.gradcam import mass_in_mask
    from training.preprocess import preprocess_mask

    recipe = get_recipe("default").with_overrides(image_size=SIZE, init="random", crop=crop)
    metadata = {"recipe": recipe.to_dict(), "preprocessing": Preprocessing.from_recipe(recipe).__dict__}
    save_checkpoint(tmp_path / "model.pt", build_model(recipe, 120.0, 40.0), metadata)
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt", device="cpu")
    films = [decode_image(path.read_bytes())
             for path in sorted((synthetic_dataset / "boneage-training-dataset").glob("*.png"))[:6]]
    predictions = predictor.predict(films, ["F", "M"] * 3, gradcam=True)
    for film, prediction in zip(films, predictions):
        location = locate_hand(film)
        assert location.found and location.rotation_degrees in (0, None)  # upright synthetic hands
        mask = np.zeros(film.shape, dtype=bool)
        left, top, right, bottom = location.box
        mask[top:bottom, left:right] = True
        moved = preprocess_mask(mask, predictor.preprocessing, crop_region(film, predictor.preprocessing))
        rows, cols = np.nonzero(moved)
        expected = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / SIZE
        np.testing.assert_allclose(prediction.hand_box, expected, atol=1.01 / SIZE)
        assert prediction.heatmap_in_hand == pytest.approx(mass_in_mask(prediction.heatmap, moved), abs=0.05)
