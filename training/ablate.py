"""`boneage ablate`: the seed report's ablation rows, each trained under the same settings.

Rows: the full recipe, without augmentation, frozen backbone, random initialisation and
128 px. Where the full recipe already starts from random weights (no ImageNet weights on
the machine), the random-init row would repeat it and is left out with a note.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.recipes import get_recipe
from training.report import write_ablation_table
from training.train import train


def ablation_variants(recipe_name: str, init: str | None) -> list[tuple[str, dict]]:
    base_init = init or get_recipe(recipe_name).init
    variants = [
        ("full recipe", {}),
        ("without augmentation", {"augment": "none"}),
        ("frozen backbone", {"freeze_backbone": True}),
        ("reduced image size (128 px)", {"image_size": 128}),
    ]
    if base_init != "random":
        variants.insert(3, ("random initialisation", {"init": "random"}))
    return variants


def run_ablation(data_dir, out_dir, *, recipe: str = "seed", init: str | None = None, epochs: int | None = None,
                 time_budget_s: float | None = None, limit: int | None = None, seed: int = 0,
                 progress: bool = True) -> list[dict]:
    out_dir = Path(out_dir)
    base = get_recipe(recipe).with_overrides(init=init, epochs=epochs)
    rows = []
    for name, changes in ablation_variants(recipe, init):
        variant = base.with_overrides(**changes)
        run_dir = out_dir / name.split(" (")[0].replace(" ", "-")
        checkpoint = train(data_dir, variant, run_dir, seed=seed, time_budget_s=time_budget_s, limit=limit,
                           progress=progress)
        metrics = json.loads(checkpoint.with_suffix(".json").read_text())["metrics"]
        rows.append({"name": name, "mae": metrics["test_mae"], "rmse": metrics["test_rmse"], "r2": metrics["test_r2"],
                     "epochs": metrics["epochs_run"], "train_seconds": metrics["train_seconds"]})
    write_ablation_table(out_dir, rows)
    return rows
