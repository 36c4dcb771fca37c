"""The demo model `boneage up` serves on a fresh install: trained on SYNTHETIC
radiographs, registered and activated, labelled "not for clinical use"."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.model_identity import SYNTHETIC_LABEL
from services.model_registry import Registered, register_model

DEMO_IMAGES = 300
DEMO_IMAGE_SIZE = 256
DEMO_TIME_BUDGET_S = 300  # training stops after the epoch that would exceed this


def ensure_demo_model(
    *,
    uow,
    var_dir: Path,
    model_dir: Path,
    generate: Callable | None = None,
    train: Callable | None = None,
    say: Callable[[str], None] = print,
    images: int = DEMO_IMAGES,
    image_size: int = DEMO_IMAGE_SIZE,
    time_budget_s: float = DEMO_TIME_BUDGET_S,
    data_dir: Path | None = None,
) -> Registered | None:
    """Train and register the demo model when no model is active; returns it, or
    None when a model was already active. `images` synthetic radiographs of
    `image_size` pixels are generated (once: an existing demo data set is reused) and
    training stops after the epoch that exceeds `time_budget_s` CPU seconds.
    `generate` and `train` default to training.synth.generate_dataset and
    training.train.train. The data goes to `data_dir` (default <var_dir>/demo-data;
    `boneage up` puts it under the data root, as dataset "demo")."""
    with uow() as work:
        active = work.models.active()
        if active is not None:
            say(f"model: {active.name}" + (f" ({active.label})" if active.label else ""))
            return None

    say("No model is registered yet: training the demo model on synthetic radiographs.")
    say(f"It will be labelled: {SYNTHETIC_LABEL}. This takes a few minutes on a CPU, once.")
    if generate is None:
        from training.synth import generate_dataset as generate
    if train is None:
        from training.train import train

    data_dir = Path(data_dir) if data_dir is not None else Path(var_dir) / "demo-data"
    if not (data_dir / "boneage-training-dataset.csv").is_file():
        generate(data_dir, images, size=image_size, seed=0, progress=True)
    checkpoint = train(data_dir, "demo", Path(model_dir) / "demo-training", seed=0,
                       time_budget_s=time_budget_s, progress=True)
    model = register_model(checkpoint, uow=uow, model_dir=model_dir, activate=True)
    say(f"registered and activated {model.name}: {model.label}")
    return model
