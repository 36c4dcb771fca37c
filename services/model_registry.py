"""Model registry use cases: register a trained checkpoint, activate one, list them.

A checkpoint is read through its model.json sidecar (no torch) and copied into the
model directory unless it is already there, so every worker finds it however the
registering shell saw it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.atomic import copy_atomic
from core.errors import UserFacingError
from core.hashing import file_sha256
from core.model_identity import model_label, model_name
from db.models import ModelVersion


@dataclass(frozen=True)
class Registered:
    id: int
    name: str
    checkpoint_path: Path
    trained_on: str
    label: str | None
    is_active: bool
    created: bool  # False when this checkpoint was registered before
    label_changed: bool = False  # a registered model whose label this call replaced
    created_at: datetime | None = None


def read_metadata(checkpoint: Path) -> dict:
    sidecar = checkpoint.with_suffix(".json")
    if not sidecar.is_file():
        raise UserFacingError(f"{sidecar} is missing: register the model.pt written by `boneage train`")
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise UserFacingError(f"{sidecar} is not valid JSON ({exc})") from exc


def register_model(
    path: str | Path,
    *,
    uow,
    model_dir: Path,
    activate: bool = False,
    label: str | None = None,
) -> Registered:
    """Register `path` (a model.pt or its folder). Registering it again changes
    nothing unless `label` differs, which replaces the label (and says so)."""
    checkpoint = Path(path).expanduser().resolve()
    if checkpoint.is_dir():
        checkpoint = checkpoint / "model.pt"
    if not checkpoint.is_file():
        raise UserFacingError(f"there is no checkpoint at {checkpoint}")
    metadata = read_metadata(checkpoint)
    recipe = metadata.get("recipe") or {}
    recipe_name = recipe.get("name", "unknown") if isinstance(recipe, dict) else str(recipe)
    sha256 = file_sha256(checkpoint)
    name = model_name(recipe_name, sha256)
    synthetic = bool(metadata.get("synthetic"))
    shown_label = model_label(label, synthetic=synthetic)

    stored = _store_checkpoint(Path(model_dir), checkpoint, name)
    with uow() as work:
        model = work.models.get_by_name(name)
        created = model is None
        label_changed = False
        if created:
            model = work.models.add(
                ModelVersion(
                    name=name,
                    recipe=recipe_name,
                    checkpoint_path=str(stored),
                    checkpoint_sha256=sha256,
                    metrics=metadata.get("metrics") or {},
                    trained_on="synthetic" if synthetic else "real",
                    label=shown_label,
                    is_active=False,
                )
            )
        elif label is not None and shown_label != model.label:
            model.label = shown_label
            label_changed = True
        if activate:
            work.models.activate(model)
        work.commit()
        return _registered(model, created=created, label_changed=label_changed)


def activate_model(name: str, *, uow) -> Registered:
    """Make the registered model `name` the one that serves assessments."""
    with uow() as work:
        model = work.models.get_by_name(name)
        if model is None:
            known = ", ".join(m.name for m in work.models.all()) or "none"
            raise UserFacingError(f"no registered model is named {name!r} (registered: {known})")
        work.models.activate(model)
        work.commit()
        return _registered(model, created=False)


def active_model(*, uow) -> Registered | None:
    with uow() as work:
        model = work.models.active()
        return None if model is None else _registered(model, created=False)


def list_models(*, uow) -> list[Registered]:
    with uow() as work:
        return [_registered(model, created=False) for model in work.models.all()]


def _registered(model: ModelVersion, *, created: bool, label_changed: bool = False) -> Registered:
    return Registered(
        id=model.id,
        name=model.name,
        checkpoint_path=Path(model.checkpoint_path),
        trained_on=model.trained_on,
        label=model.label,
        is_active=model.is_active,
        created=created,
        label_changed=label_changed,
        created_at=model.created_at,
    )


def _store_checkpoint(model_dir: Path, checkpoint: Path, name: str) -> Path:
    model_dir = model_dir.resolve()
    if model_dir in checkpoint.parents:
        return checkpoint
    target = model_dir / name / "model.pt"
    if not target.exists():
        copy_atomic(checkpoint, target)
    copy_atomic(checkpoint.with_suffix(".json"), target.with_suffix(".json"))
    return target
