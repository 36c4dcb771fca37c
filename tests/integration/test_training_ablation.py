"""`run_ablation` trains, for each row, the recipe the row names (training is faked here:
training.ablate.train is replaced by a recorder, so this runs in well under a second)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import training.ablate as ablate
from training.recipes import Recipe, get_recipe


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[Recipe, Path, dict]]:
    """(recipe, run directory, keyword arguments) of each train() call run_ablation makes."""
    calls: list[tuple[Recipe, Path, dict]] = []

    def fake_train(data_dir, recipe, out_dir, **kwargs):
        assert isinstance(recipe, Recipe), "run_ablation must hand train() the variant's Recipe"
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        calls.append((recipe, out_dir, kwargs))
        n = len(calls)
        metrics = {"test_mae": 10.0 + n, "test_rmse": 12.0 + n, "test_r2": 0.5, "epochs_run": 1, "train_seconds": 0.1}
        (out_dir / "model.json").write_text(json.dumps({"metrics": metrics}))
        return out_dir / "model.pt"

    monkeypatch.setattr(ablate, "train", fake_train)
    return calls


def _changed_fields(variant: Recipe, full: Recipe) -> dict:
    return {f.name: getattr(variant, f.name) for f in dataclasses.fields(Recipe)
            if getattr(variant, f.name) != getattr(full, f.name)}


EXPECTED_CHANGES = {
    "full recipe": {},
    "without augmentation": {"augment": "none"},
    "frozen backbone": {"freeze_backbone": True},
    "random initialisation": {"init": "random"},
    "reduced image size (128 px)": {"image_size": 128},
}


def test_seed_ablation_rows_train_the_recipes_they_name(recorded, tmp_path):
    rows = ablate.run_ablation(tmp_path / "data", tmp_path / "out", recipe="seed", epochs=3, limit=20, seed=7,
                               progress=False)
    names = [row["name"] for row in rows]
    assert names == ["full recipe", "without augmentation", "frozen backbone", "random initialisation",
                     "reduced image size (128 px)"]
    assert len(recorded) == len(rows)
    full = get_recipe("seed").with_overrides(epochs=3)
    assert recorded[0][0] == full  # the full row is the recipe itself, with only the asked-for epochs
    assert full.augment == "rotate10" and not full.freeze_backbone and full.init == "imagenet"
    assert full.image_size == 224
    for name, (recipe, _, kwargs) in zip(names, recorded):
        assert _changed_fields(recipe, full) == EXPECTED_CHANGES[name], name
        assert kwargs["seed"] == 7 and kwargs["limit"] == 20  # the same settings for every row
        assert kwargs.get("image_size") is None and kwargs.get("init") is None  # not overriding the variant
    assert len({run_dir for _, run_dir, _ in recorded}) == len(rows)  # each row its own run directory
    assert [row["mae"] for row in rows] == [11.0, 12.0, 13.0, 14.0, 15.0]  # each row reports its own run
    assert json.loads((tmp_path / "out" / "ablation.json").read_text())["reference"] == "full recipe"


def test_random_init_recipe_ablation_skips_the_repeated_row(recorded, tmp_path):
    rows = ablate.run_ablation(tmp_path / "data", tmp_path / "out", recipe="demo", epochs=1, progress=False)
    names = [row["name"] for row in rows]
    assert names == ["full recipe", "without augmentation", "frozen backbone", "reduced image size (128 px)"]
    full = get_recipe("demo").with_overrides(epochs=1)
    assert full.init == "random" and full.augment == "strong" and full.image_size == 128
    assert recorded[0][0] == full
    for name, (recipe, _, _) in zip(names, recorded):
        # demo already runs at 128 px: that row changes nothing, but must still name 128 px
        expected = {} if name == "reduced image size (128 px)" else EXPECTED_CHANGES[name]
        assert _changed_fields(recipe, full) == expected, name
        assert recipe.image_size == (128 if "128" in name else full.image_size)


def test_init_override_applies_to_every_row(recorded, tmp_path):
    """--init random on the seed recipe: every row starts from random weights and the
    random-initialisation row (which would repeat the full recipe) is left out."""
    rows = ablate.run_ablation(tmp_path / "data", tmp_path / "out", recipe="seed", init="random", progress=False)
    assert "random initialisation" not in [row["name"] for row in rows]
    assert all(recipe.init == "random" for recipe, _, _ in recorded)
    full = get_recipe("seed").with_overrides(init="random")
    for row, (recipe, _, _) in zip(rows, recorded):
        assert _changed_fields(recipe, full) == EXPECTED_CHANGES[row["name"]], row["name"]
