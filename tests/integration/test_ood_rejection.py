"""The model-based checks of the Predictor (issue 11): the out-of-distribution score on the
model's own features refuses an image the rules let through, a hand film passes, an
upside-down or sideways film is turned upright with a note (and then predicts exactly as the
upright film), and a mirrored film (a right hand) is accepted with no note.

A demo model trained briefly on 200 synthetic radiographs: enough training films (>= 100) for
training to store OOD statistics. About a minute of CPU on one thread, hence `slow`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.image_checks import check_pixels
from core.imageio import decode_image
from training.model import load_checkpoint
from training.ood import OodModel
from training.orientation import NOTES
from training.predict import Predictor
from training.rsna import load_records
from training.synth import generate_dataset
from training.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ood-model")
    data = generate_dataset(root / "data", 200, size=128, seed=21, progress=False)
    checkpoint = train(data, "demo", root / "run", seed=0, epochs=3, image_size=64, progress=False,
                       cache_dir=root / "cache", threads=1)
    yield {"checkpoint": checkpoint, "data": data, "predictor": Predictor.from_checkpoint(checkpoint, device="cpu")}
    torch.set_num_threads(before)


def upright_hand(trained, index: int) -> np.ndarray:
    """A training film the hand locator finds upright (the locator has no answer for some)."""
    from core.hand import locate_hand

    records = load_records(trained["data"])
    train_ids = set(trained["predictor"].metadata["split"]["train"])
    films = [decode_image(r.image_path) for r in records if r.id in train_ids]
    upright = [f for f in films if locate_hand(f).rotation_degrees == 0]
    return upright[index]


def test_training_stores_ood_statistics_that_pass_its_own_validation_films(trained):
    metadata = load_checkpoint(trained["checkpoint"])["metadata"]
    stats = metadata["ood"]
    assert json.loads(trained["checkpoint"].with_suffix(".json").read_text())["ood"] == stats
    assert stats["n_train"] == len(metadata["split"]["train"]) >= 100
    assert stats["val_pass_rate"] >= 0.95
    assert trained["predictor"].ood is not None


def test_an_image_the_rules_pass_but_unlike_the_training_films_is_refused(trained):
    rng = np.random.default_rng(3)
    # smooth blobs on a dark background: a radiograph to the rules, nothing like a hand to the model
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.random((256, 256)), 6)
    image = np.clip((field - field.min()) / np.ptp(field), 0, 1).astype(np.float32)
    image[:20], image[-20:], image[:, :20], image[:, -20:] = 0, 0, 0, 0
    assert check_pixels(image) is None
    (prediction,) = trained["predictor"].predict([image], ["F"], gradcam=False)
    assert prediction.rejection_code == "unlike_training" and prediction.ood_score > 1.0
    assert "does not look like the hand radiographs this model was trained on" in prediction.rejection
    assert "trained on SYNTHETIC radiographs" in prediction.rejection  # this model's metadata says synthetic


def test_a_hand_film_passes_and_its_mirror_image_too(trained):
    film = upright_hand(trained, 0)
    prediction, mirrored = trained["predictor"].predict([film, np.ascontiguousarray(film[:, ::-1])], ["M", "M"],
                                                        gradcam=False)
    for p in (prediction, mirrored):
        assert p.rejection is None and p.rejection_code is None
        assert 0 <= p.ood_score <= 1.0
        assert p.notes == []


@pytest.mark.parametrize("turn", [180, 90, 270])
def test_a_turned_film_is_turned_upright_with_a_note(trained, turn):
    film = upright_hand(trained, 1)
    turned = np.ascontiguousarray(np.rot90(film, turn // 90))  # counter-clockwise: 90 = fingers to the left
    upright, rotated = trained["predictor"].predict([film, turned], ["F", "F"], gradcam=False)
    assert rotated.rejection is None
    assert rotated.notes == [NOTES[(360 - turn) % 360]]
    assert rotated.bone_age_months == pytest.approx(upright.bone_age_months, abs=1e-4)
    assert rotated.ood_score == pytest.approx(upright.ood_score, abs=1e-4)


def test_a_checkpoint_without_ood_statistics_predicts_without_a_score(trained):
    metadata = dict(trained["predictor"].metadata)
    del metadata["ood"]
    predictor = Predictor(trained["predictor"].model, metadata, "old", torch.device("cpu"))
    assert predictor.ood is None and OodModel.from_metadata(metadata) is None
    (prediction,) = predictor.predict([upright_hand(trained, 0)], ["M"], gradcam=False)
    assert prediction.ood_score is None and prediction.rejection is None
