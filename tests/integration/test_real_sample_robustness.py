"""Robustness of the image pipeline on real RSNA studies (skipped without the sample).

The same radiograph re-encoded as users send it (16-bit PNG, RGB PNG, JPEG, upscaled)
must give the same or nearly the same bone age. A constant predictor would pass that
trivially, so the checks run on a model shown here to have learned something: the demo
recipe trained briefly on synthetic radiographs (where the age signal is strong) must
beat predicting the training mean on held-out synthetic images, and must tell the real
studies apart and react to a real change of the image, by far more than the tolerances.
About a minute of CPU (one thread), hence `slow`.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.imageio import decode_image
from training.predict import Predictor
from training.rsna import load_records
from training.synth import generate_dataset
from training.train import train

from helpers import RSNA_SAMPLE

pytestmark = pytest.mark.slow

REAL_STUDIES = 8
# The competence the model must show on held-out synthetic images: MAE below this share of
# the MAE of always predicting the training mean (it reaches about 0.64).
BEATS_THE_MEAN_BY = 0.75


@pytest.fixture(scope="module")
def real_studies():
    if not RSNA_SAMPLE.is_dir():
        pytest.skip(f"the real RSNA sample is not at {RSNA_SAMPLE}; the robustness check needs it")
    return load_records(RSNA_SAMPLE)[:REAL_STUDIES]


@pytest.fixture(scope="module")
def one_thread():
    """Training and prediction on one thread: on a shared two-core machine two OpenMP threads
    spin against other processes and run many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _predict(predictor: Predictor, images, sexes) -> np.ndarray:
    return np.array([p.bone_age_months for p in predictor.predict(images, sexes, gradcam=False)])


@pytest.fixture(scope="module")
def learned_model(real_studies, one_thread, tmp_path_factory) -> dict:
    """The demo recipe trained on 300 synthetic radiographs (48 px, 12 epochs), with its MAE on
    80 held-out synthetic images and the MAE of predicting the training mean on them."""
    root = tmp_path_factory.mktemp("robustness-model")
    train_dir = generate_dataset(root / "train", 300, size=128, seed=11, progress=False)
    held_out_dir = generate_dataset(root / "held-out", 80, size=128, seed=12, progress=False)
    checkpoint = train(train_dir, "demo", root / "model", seed=0, epochs=12, image_size=48, progress=False,
                       cache_dir=root / "cache", threads=1)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    held_out = load_records(held_out_dir)
    truth = np.array([r.bone_age_months for r in held_out])
    predicted = _predict(predictor, [decode_image(r.image_path) for r in held_out], [r.sex for r in held_out])
    train_mean = np.mean([r.bone_age_months for r in load_records(train_dir)])
    return {"predictor": predictor, "mae": float(np.mean(np.abs(truth - predicted))),
            "mae_of_mean": float(np.mean(np.abs(truth - train_mean)))}


@pytest.fixture(scope="module")
def original_predictions(learned_model, real_studies) -> np.ndarray:
    return _predict(learned_model["predictor"], [decode_image(r.image_path) for r in real_studies],
                    [r.sex for r in real_studies])


def test_the_model_beats_predicting_the_mean_on_held_out_images(learned_model):
    assert learned_model["mae"] < BEATS_THE_MEAN_BY * learned_model["mae_of_mean"], learned_model


def test_the_model_responds_to_the_real_radiographs(learned_model, real_studies, original_predictions):
    """Not constant on real films: the studies get different ages, and a real change of the
    image (inverted intensities, as a MONOCHROME1 film misread) moves the prediction."""
    assert np.all(np.isfinite(original_predictions))
    assert np.ptp(original_predictions) > 10.0, original_predictions
    inverted = _predict(learned_model["predictor"], [1.0 - decode_image(r.image_path) for r in real_studies],
                        [r.sex for r in real_studies])
    assert np.mean(np.abs(inverted - original_predictions)) > 6.0, (inverted, original_predictions)


def _reencode(path, how: str) -> bytes:
    pixels = np.asarray(Image.open(path).convert("L"))
    buffer = io.BytesIO()
    if how == "png16":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(buffer, format="PNG")
    elif how == "rgb":
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(buffer, format="PNG")
    elif how == "jpeg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    elif how == "upscaled":
        Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("how, tolerance_months", [("png16", 0.05), ("rgb", 0.05), ("jpeg", 3.0), ("upscaled", 3.0)])
def test_re_encoded_real_studies_predict_alike(learned_model, real_studies, original_predictions, how,
                                               tolerance_months):
    # the checks below mean something only for a model that has learned bone age
    assert learned_model["mae"] < BEATS_THE_MEAN_BY * learned_model["mae_of_mean"], learned_model
    sexes = [r.sex for r in real_studies]
    variant = _predict(learned_model["predictor"], [decode_image(_reencode(r.image_path, how)) for r in real_studies],
                       sexes)
    assert np.all(np.isfinite(variant))
    np.testing.assert_array_less(np.abs(variant - original_predictions), tolerance_months + 1e-9, err_msg=how)
