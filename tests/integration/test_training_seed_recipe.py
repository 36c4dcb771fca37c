"""The `seed` recipe's own path: MSE on raw months (training/train.py) and its training run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.model import build_model, load_checkpoint
from training.recipes import get_recipe
from training.train import recipe_loss, train


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 1, 32, 32, generator=g)
    male = torch.tensor([1.0, 0.0, 1.0, 0.0])
    ages = torch.tensor([30.0, 90.0, 150.0, 210.0])  # months, far from an untrained model's output
    return images, male, ages


def test_seed_loss_is_mse_on_raw_months():
    recipe = get_recipe("seed").with_overrides(init="random")
    assert recipe.loss == "mse_months"
    torch.manual_seed(0)
    model = build_model(recipe, target_mean=120.0, target_std=40.0).eval()
    # the seed's head regresses raw months: no target standardisation in the model
    assert float(model.target_mean) == 0.0 and float(model.target_std) == 1.0
    images, male, ages = _batch()
    loss = recipe_loss(recipe, model, images, male, ages).detach()
    with torch.no_grad():
        predicted = model(images, male)
    expected = float(((predicted - ages) ** 2).mean())  # months squared
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(loss) > 1000  # errors of ~100 months: MSE in months², not a z-scored or L1 loss
    assert float(loss) != pytest.approx(float(F.smooth_l1_loss(predicted, ages)), rel=1e-2)


def test_default_loss_is_smooth_l1_on_the_z_scored_age():
    """The contrast: the other recipes standardise the target with the training mean and SD."""
    recipe = get_recipe("demo")
    assert recipe.loss == "smooth_l1_z"
    torch.manual_seed(0)
    model = build_model(recipe, target_mean=120.0, target_std=40.0).eval()
    images, male, ages = _batch()
    with torch.no_grad():
        expected = F.smooth_l1_loss(model.standardised(images, male), (ages - 120.0) / 40.0)
        assert float(recipe_loss(recipe, model, images, male, ages)) == pytest.approx(float(expected), rel=1e-5)


def test_seed_recipe_trains_with_its_own_preprocessing_and_loss(synthetic_dataset, tmp_path):
    """One short run of the seed recipe (random init: no ImageNet download in tests)."""
    checkpoint = train(synthetic_dataset, "seed", tmp_path / "run", epochs=1, image_size=32, limit=16,
                       init="random", progress=False, cache_dir=tmp_path / "cache")
    metadata = json.loads(checkpoint.with_suffix(".json").read_text())
    assert metadata["preprocessing"] == {"image_size": 32, "resize_mode": "resize_crop", "intensity": "raw",
                                         "crop": "none"}  # the seed keeps the whole film
    recipe = metadata["recipe"]
    assert (recipe["name"], recipe["loss"], recipe["augment"], recipe["use_sex"], recipe["tta"]) == (
        "seed", "mse_months", "rotate10", False, False)
    state = load_checkpoint(checkpoint)["state_dict"]
    assert float(state["target_mean"]) == 0.0 and float(state["target_std"]) == 1.0
    assert not any(name.startswith("sex_encoder") for name in state)
    assert np.isfinite(metadata["metrics"]["val_mae"])
