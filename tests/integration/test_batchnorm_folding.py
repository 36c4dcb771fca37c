"""The Predictor runs a copy of the model with its batch normalisation folded into the
convolutions (training/fusion.py): the same months and the same layer-4 activations as the
model as trained, and the model it was given is left unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.imageio import decode_image
from training.fusion import fold_batchnorm
from training.inference import forward_with_features
from training.model import model_from_checkpoint
from training.precision import Precision
from training.predict import Predictor
from training.rsna import load_records


def _batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.fixture(scope="module")
def films(synthetic_dataset):
    records = load_records(synthetic_dataset)[:8]
    return [decode_image(r.image_path) for r in records], [r.sex for r in records]


def test_folding_keeps_the_function_and_leaves_the_model_given_alone(tiny_model, films):
    model, metadata = model_from_checkpoint(tiny_model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert _batch_norms(model) == 20 and _batch_norms(folded) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fold_batchnorm(folded) is not folded and _batch_norms(fold_batchnorm(folded)) == 0

    squares = Predictor(model, metadata, "demo", torch.device("cpu"), Precision("fp32")).preprocess(films[0])
    male = np.array([s == "M" for s in films[1]], dtype=np.float32)
    exact = forward_with_features(model, squares, male, tta=True)
    fast = forward_with_features(folded, squares, male, tta=True)
    scale = exact.feature_maps.abs().max().item()
    assert scale > 0  # real activations to compare
    assert (fast.feature_maps - exact.feature_maps).abs().max().item() <= 1e-4 * scale
    np.testing.assert_allclose(fast.months, exact.months, rtol=0, atol=1e-3)
    np.testing.assert_allclose(fast.features, exact.features, rtol=0, atol=1e-4 * scale)


def test_the_predictor_predicts_what_the_unfolded_model_predicts(tiny_model, films):
    model, metadata = model_from_checkpoint(tiny_model)
    predictor = Predictor.from_checkpoint(tiny_model, device="cpu", precision="fp32")
    assert _batch_norms(predictor.model) == 0
    images, sexes = films
    months = np.array([p.bone_age_months for p in predictor.predict(images, sexes, gradcam=False)])
    male = np.array([s == "M" for s in sexes], dtype=np.float32)
    squares = predictor.preprocess(images)
    unfolded = forward_with_features(model, squares, male, tta=predictor.recipe.tta).months
    np.testing.assert_allclose(months, unfolded, rtol=0, atol=1e-3)
