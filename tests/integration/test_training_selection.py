"""Best-epoch selection in a real training run: a diverged (NaN) epoch is never saved."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from training.model import load_checkpoint
from training.train import Trainer, TrainingDiverged, train

SMALL = dict(image_size=32, limit=16, progress=False, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def scripted_validation(monkeypatch):
    """script(maes) makes epoch i report maes[i] as its validation MAE (after the real
    validation ran, so BatchNorm refresh etc. still happen) and records the evaluated
    weights of each epoch."""
    states: list[dict] = []

    def script(maes):
        real = Trainer.validate
        calls = iter(maes)

        def validate(self):
            real(self)
            states.append(copy.deepcopy(self.evaluated_model().state_dict()))
            return next(calls)

        monkeypatch.setattr(Trainer, "validate", validate)
        return states

    return script


def test_a_nan_epoch_after_a_finite_one_is_not_saved(synthetic_dataset, tmp_path, scripted_validation):
    states = scripted_validation([30.0, math.nan])
    checkpoint = train(synthetic_dataset, "demo", tmp_path / "run", epochs=2, cache_dir=tmp_path / "cache", **SMALL)
    metadata = json.loads(checkpoint.with_suffix(".json").read_text())
    assert metadata["metrics"]["best_epoch"] == 1 and metadata["metrics"]["val_mae"] == 30.0
    assert [h["epoch"] for h in metadata["history"]] == [1, 2] and math.isnan(metadata["history"][1]["val_mae"])
    saved = load_checkpoint(checkpoint)["state_dict"]
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])  # the epochs differ
    for name, tensor in saved.items():
        assert torch.equal(tensor, states[0][name]), f"{name} is not epoch 1's"


def test_a_nan_first_epoch_is_not_best_either(synthetic_dataset, tmp_path, scripted_validation):
    states = scripted_validation([math.nan, 30.0])
    checkpoint = train(synthetic_dataset, "demo", tmp_path / "run", epochs=2, cache_dir=tmp_path / "cache", **SMALL)
    metadata = json.loads(checkpoint.with_suffix(".json").read_text())
    assert metadata["metrics"]["best_epoch"] == 2 and metadata["metrics"]["val_mae"] == 30.0
    saved = load_checkpoint(checkpoint)["state_dict"]
    assert all(torch.equal(tensor, states[1][name]) for name, tensor in saved.items())


def test_no_finite_epoch_fails_clearly_and_saves_nothing(synthetic_dataset, tmp_path, scripted_validation):
    scripted_validation([math.nan, math.inf])
    with pytest.raises(TrainingDiverged, match="diverged: no epoch reached a finite validation MAE"):
        train(synthetic_dataset, "demo", tmp_path / "run", epochs=2, cache_dir=tmp_path / "cache", **SMALL)
    assert not (tmp_path / "run" / "model.pt").exists()
    assert not (tmp_path / "run" / "model.json").exists()


def test_without_validation_images_the_last_sound_epoch_is_saved(synthetic_dataset, tmp_path, scripted_validation):
    """Nothing to select on (an empty validation split): the latest epoch is the model, as
    before, rather than a failure."""
    from training.recipes import get_recipe
    from training.rsna import load_records
    from training.train import TrainingData

    recipe = get_recipe("demo").with_overrides(epochs=2, image_size=32)
    ids = sorted(r.id for r in load_records(synthetic_dataset))[:16]
    split = {"train": ids[:12], "val": [], "test": ids[12:]}
    data = TrainingData.prepare(synthetic_dataset, recipe, split=split, progress=False, cache_dir=tmp_path / "cache")
    assert len(data.part("val")[0]) == 0
    states = scripted_validation([math.nan, math.nan])
    trainer = Trainer(recipe, data, tmp_path / "run", seed=0, time_budget_s=None, progress=False,
                      data_dir=str(synthetic_dataset))
    (tmp_path / "run").mkdir()
    checkpoint = trainer.run()
    assert json.loads(checkpoint.with_suffix(".json").read_text())["metrics"]["best_epoch"] == 2
    saved = load_checkpoint(checkpoint)["state_dict"]
    assert all(torch.equal(tensor, states[1][name]) for name, tensor in saved.items())
