"""Flip test-time augmentation: the prediction is the mean of the model's outputs on the
image and on its mirror image, computed here with the model directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.imageio import decode_image
from training.inference import predict_months
from training.model import model_from_checkpoint
from training.precision import Precision
from training.predict import Predictor
from training.preprocess import Preprocessing, preprocess
from training.recipes import get_recipe
from training.rsna import load_records


@pytest.fixture(scope="module")
def inputs(tiny_model, synthetic_dataset):
    """Four preprocessed squares, their sex flags and the two independent forward passes."""
    model, metadata = model_from_checkpoint(tiny_model)
    records = load_records(synthetic_dataset)[:4]
    images = [decode_image(r.image_path) for r in records]
    config = Preprocessing(**metadata["preprocessing"])
    squares = np.stack([preprocess(image, config) for image in images])
    male = np.array([r.male for r in records], dtype=np.float32)
    x = torch.from_numpy(squares).float().div(255.0).unsqueeze(1)  # (B, 1, H, W) in [0, 1]
    with torch.no_grad():
        plain = model(x, torch.from_numpy(male)).numpy()
        mirrored = model(x.flip(-1), torch.from_numpy(male)).numpy()
    # a guard: were the two passes alike, TTA on or off would be indistinguishable
    assert np.min(np.abs(plain - mirrored)) > 1e-3, (plain, mirrored)
    return dict(model=model, metadata=metadata, images=images, sexes=[r.sex for r in records],
                squares=squares, male=male, plain=plain, mirrored=mirrored)


def test_predict_months_tta_is_the_mean_of_image_and_mirror(inputs):
    tta = predict_months(inputs["model"], inputs["squares"], inputs["male"], tta=True)
    np.testing.assert_allclose(tta, (inputs["plain"] + inputs["mirrored"]) / 2, rtol=1e-5, atol=1e-4)
    without = predict_months(inputs["model"], inputs["squares"], inputs["male"], tta=False)
    np.testing.assert_allclose(without, inputs["plain"], rtol=1e-5, atol=1e-4)


def test_predict_months_tta_across_batches(inputs):
    """Batches smaller than the input still average each image with its own mirror."""
    tta = predict_months(inputs["model"], inputs["squares"], inputs["male"], tta=True, batch_size=3)
    np.testing.assert_allclose(tta, (inputs["plain"] + inputs["mirrored"]) / 2, rtol=1e-5, atol=1e-4)


def test_predictor_applies_the_recipes_flip_tta(inputs, tiny_model):
    assert get_recipe("demo").tta and get_recipe("default").tta
    # float32, as the references (bfloat16 on a CPU that has it: test_inference_precision.py)
    predictor = Predictor.from_checkpoint(tiny_model, device="cpu", precision="fp32")
    assert predictor.recipe.tta
    months = np.array([p.bone_age_months for p in predictor.predict(inputs["images"], inputs["sexes"], gradcam=False)])
    np.testing.assert_allclose(months, (inputs["plain"] + inputs["mirrored"]) / 2, rtol=1e-5, atol=1e-3)
    assert np.all(np.abs(months - inputs["plain"]) > 1e-4)  # not the plain forward pass


def test_predictor_without_tta_is_the_plain_forward_pass(inputs):
    metadata = dict(inputs["metadata"], recipe=dict(inputs["metadata"]["recipe"], tta=False))
    predictor = Predictor(inputs["model"], metadata, "demo-notta", torch.device("cpu"), Precision("fp32"))
    months = np.array([p.bone_age_months for p in predictor.predict(inputs["images"], inputs["sexes"], gradcam=False)])
    np.testing.assert_allclose(months, inputs["plain"], rtol=1e-5, atol=1e-3)
