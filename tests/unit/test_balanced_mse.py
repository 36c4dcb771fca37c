"""Balanced MSE (issue 12): the loss that does not reward predicting the crowded middle ages,
and progressive resizing's schedule of training image sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.balanced_mse import balanced_mse  # noqa: E402
from training.recipes import get_recipe  # noqa: E402
from training.rsna import Record  # noqa: E402
from training.train import Trainer, TrainingData, recipe_loss  # noqa: E402


def _best_constant(targets: torch.Tensor, prior: torch.Tensor, sigma: float) -> float:
    """The single prediction that minimises the mean loss over `targets`, by gradient descent."""
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.2)
    for _ in range(2000):
        optimizer.zero_grad()
        balanced_mse(p.expand(len(targets)), targets, prior, sigma).mean().backward()
        optimizer.step()
    return float(p.detach())


def test_a_balanced_prior_adds_no_pull():
    # Prior spread evenly and widely: the crowd term is (nearly) constant around the targets, so the
    # best constant for targets -1 and +1 is their mean, as under MSE.
    prior = torch.linspace(-20, 20, 4001)
    assert _best_constant(torch.tensor([-1.0, 1.0]), prior, 0.5) == pytest.approx(0.0, abs=1e-3)


def test_a_crowded_prior_pushes_predictions_out_of_the_crowd():
    # A rare target at -2 among training ages crowded at 0: MSE's answer for it is -2 and so is
    # balanced MSE's on its own; between a rare and a common target the crowd's pull that MSE
    # rewards is cancelled, so the best constant moves towards the rare one.
    prior = torch.cat([torch.zeros(90), torch.full((10,), -2.0)])
    targets = torch.tensor([-2.0, 0.0])
    best = _best_constant(targets, prior, 0.7)
    assert best < -1.0 - 0.05  # MSE would give -1.0, the mean of the two


def test_recipe_loss_needs_the_training_ages_for_balanced_mse():
    recipe = get_recipe("demo").with_overrides(loss="balanced_mse_z")
    model = _tiny_trainer_model(recipe)
    images, male, ages = torch.rand(2, 1, 32, 32), torch.tensor([1.0, 0.0]), torch.tensor([60.0, 120.0])
    with pytest.raises(ValueError, match="training ages"):
        recipe_loss(recipe, model, images, male, ages)
    loss = recipe_loss(recipe, model, images, male, ages, prior_ages=torch.tensor([60.0, 90.0, 120.0]))
    assert torch.isfinite(loss)


def _tiny_trainer_model(recipe):
    from training.model import build_model

    return build_model(recipe.with_overrides(init="random"), target_mean=90.0, target_std=30.0)


def _data(n: int = 24) -> TrainingData:
    rng = np.random.default_rng(0)
    records = [Record(f"{i}", Path(f"{i}.png"), float(rng.uniform(12, 200)), bool(i % 2)) for i in range(n)]
    ids = [r.id for r in records]
    split = {"train": ids[:16], "val": ids[16:20], "test": ids[20:]}
    return TrainingData(records, split, rng.integers(0, 255, size=(n, 64, 64), dtype=np.uint8))


def test_progressive_resizing_grows_to_the_full_size_by_three_quarters_of_the_schedule(tmp_path):
    recipe = get_recipe("demo").with_overrides(image_size=64, progressive_from=32, batch_size=8, epochs=100,
                                               init="random")
    trainer = Trainer(recipe, _data(), tmp_path, seed=0, time_budget_s=None, progress=False, data_dir=str(tmp_path))
    total = recipe.epochs * trainer.steps_per_epoch
    sizes = []
    for share in (0.0, 0.375, 0.75, 0.9):
        trainer.step = int(share * total)
        sizes.append(trainer.training_image_size())
    assert sizes == [32, 48, 64, 64]
    odd = Trainer(recipe.with_overrides(image_size=72, progressive_from=40), _data(), tmp_path, seed=0,
                  time_budget_s=None, progress=False, data_dir=str(tmp_path))
    odd.step = int(0.8 * total)
    assert odd.training_image_size() == 72  # the last quarter at the full size, a multiple of 16 or not
    assert Trainer(recipe.with_overrides(progressive_from=0), _data(), tmp_path, seed=0, time_budget_s=None,
                   progress=False, data_dir=str(tmp_path)).training_image_size() == 64


def test_a_progressive_balanced_run_trains_and_saves_a_full_size_model(tmp_path, one_thread):
    recipe = get_recipe("demo").with_overrides(image_size=64, progressive_from=32, loss="balanced_mse_z",
                                               batch_size=8, epochs=2, init="random", precise_bn=False)
    trainer = Trainer(recipe, _data(), tmp_path, seed=0, time_budget_s=None, progress=False, data_dir=str(tmp_path))
    path = trainer.run()
    assert path.is_file()
    assert all(np.isfinite(h["train_loss"]) for h in trainer.history)
    assert trainer.training_image_size() == 64  # the schedule ended at the full size
