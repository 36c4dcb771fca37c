"""Registering a trained checkpoint as a ModelVersion (reads model.json; no torch).

The checkpoint is copied into BONEAGE_MODEL_DIR/<name>/ unless it is already
there, so the worker finds it however the registering shell saw it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from boneage.errors import UserFacingError
from boneage.hashing import file_sha256
from boneage.settings import Settings
from db.models import ModelVersion
from db.session import unit_of_work_factory

SYNTHETIC_LABEL = "synthetic demo model, not for clinical use"


@dataclass(frozen=True)
class Registered:
    id: int
    name: str
    checkpoint_path: Path
    trained_on: str
    label: str | None
    is_active: bool
    created: bool  # False when this checkpoint was registered before


def read_metadata(checkpoint: Path) -> dict:
    sidecar = checkpoint.with_suffix(".json")
    if not sidecar.is_file():
        raise UserFacingError(f"{sidecar} is missing: register the model.pt written by `boneage train`")
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise UserFacingError(f"{sidecar} is not valid JSON ({exc})") from exc


def register_model(
    settings: Settings,
    path: str | Path,
    *,
    activate: bool = False,
    label: str | None = None,
) -> Registered:
    checkpoint = Path(path).expanduser().resolve()
    if checkpoint.is_dir():
        checkpoint = checkpoint / "model.pt"
    if not checkpoint.is_file():
        raise UserFacingError(f"there is no checkpoint at {checkpoint}")
    metadata = read_metadata(checkpoint)
    recipe = metadata.get("recipe") or {}
    recipe_name = recipe.get("name", "unknown") if isinstance(recipe, dict) else str(recipe)
    sha256 = file_sha256(checkpoint)
    name = f"{recipe_name}-{sha256[:8]}"
    trained_on = "synthetic" if metadata.get("synthetic") else "real"
    if label is None and trained_on == "synthetic":
        label = SYNTHETIC_LABEL

    stored = _store_checkpoint(settings, checkpoint, name)
    with unit_of_work_factory(settings.database_url)() as uow:
        model = uow.models.get_by_name(name)
        created = model is None
        if created:
            model = uow.models.add(
                ModelVersion(
                    name=name,
                    recipe=recipe_name,
                    checkpoint_path=str(stored),
                    checkpoint_sha256=sha256,
                    metrics=metadata.get("metrics") or {},
                    trained_on=trained_on,
                    label=label,
                )
            )
        if activate:
            uow.models.activate(model)
        uow.commit()
        return Registered(
            id=model.id,
            name=model.name,
            checkpoint_path=Path(model.checkpoint_path),
            trained_on=model.trained_on,
            label=model.label,
            is_active=model.is_active,
            created=created,
        )


def _store_checkpoint(settings: Settings, checkpoint: Path, name: str) -> Path:
    model_dir = settings.model_dir.resolve()
    if model_dir in checkpoint.parents:
        return checkpoint
    target_dir = model_dir / name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "model.pt"
    if not target.exists():
        shutil.copy2(checkpoint, target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)
    shutil.copy2(checkpoint.with_suffix(".json"), target.with_suffix(".json"))
    return target
