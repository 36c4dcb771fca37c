"""Promotion use cases: activate a registered model (after comparing it with the serving
one), roll back to the previous one, and the activation history ("which model served
between these dates").

A candidate is compared with the serving model on the same held-out studies when its
training job ends (services.training_jobs). Activating one that compared worse, or that
has no comparison with the model serving now, is refused unless forced with a note.
Every change is recorded by ModelVersionRepository.activate (who, when, why). Workers
pick the new model up on their next assessment (services.predictors reloads on change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import Conflict, NotFound, UserFacingError
from db.models import ModelActivation, ModelVersion

MAX_NOTE = 500


@dataclass(frozen=True)
class Activation:
    id: int
    model: str
    previous_model: str | None
    action: str
    activated_by: str | None
    note: str | None
    forced: bool
    comparison: dict | None
    activated_at: datetime


@dataclass(frozen=True)
class ServingPeriod:
    model: str
    since: datetime
    until: datetime | None  # None: still serving


def _clean_note(note: str | None) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise UserFacingError(f"the note is longer than {MAX_NOTE} characters")
    return note


def _model_or_404(work, name: str) -> ModelVersion:
    model = work.models.get_by_name(name)
    if model is None:
        known = ", ".join(m.name for m in work.models.all()) or "none"
        raise NotFound(f"no registered model is named {name!r} (registered: {known})")
    return model


def _require_checkpoint(model: ModelVersion) -> None:
    if not Path(model.checkpoint_path).is_file():
        raise Conflict(f"the checkpoint of {model.name} is missing ({model.checkpoint_path}); "
                       "it cannot serve. Register the model again.")


def comparison_with(model: ModelVersion, serving: ModelVersion | None) -> dict | None:
    if serving is None:
        return None
    return ((model.metrics or {}).get("comparisons") or {}).get(serving.name)


def promote_model(name: str, *, uow, by: str | None = None, note: str | None = None,
                  force: bool = False) -> Activation | None:
    """Make `name` the serving model; None when it already serves. Refused (Conflict)
    when it compared worse than the serving model on the same held-out data, or was
    never compared with it, unless `force` with a note."""
    note = _clean_note(note)
    if force and note is None:
        raise UserFacingError("forcing an activation needs a note saying why")
    with uow() as work:
        model = _model_or_404(work, name)
        _require_checkpoint(model)
        serving = work.models.active()
        if serving is not None and serving.id == model.id:
            return None
        comparison = comparison_with(model, serving)
        refusal = None
        if serving is not None and comparison is None:
            refusal = (f"{model.name} was never compared with the serving model {serving.name} on the same "
                       "held-out data")
        elif comparison is not None and comparison["candidate_mae"] > comparison["baseline_mae"]:
            refusal = (f"{model.name} is worse than the serving model {serving.name} on the same held-out data "
                       f"(MAE {comparison['candidate_mae']:.2f} vs {comparison['baseline_mae']:.2f} months, "
                       f"n={comparison['n']})")
        if refusal and not force:
            raise Conflict(f"{refusal}; activation refused. Force it with a note saying why.")
        work.models.activate(model, by=by, note=note, action="activate", forced=bool(refusal),
                             comparison=comparison)
        work.commit()
        return _activation(work.activations.latest())


def rollback_model(*, uow, by: str | None = None, note: str | None = None) -> Activation:
    """Serve again the model that served before the current one was activated."""
    note = _clean_note(note)
    with uow() as work:
        serving = work.models.active()
        if serving is None:
            raise Conflict("no model is serving: there is nothing to roll back")
        target_id = None
        for row in work.activations.history():
            if row.model_version_id == serving.id and row.action != "rollback":
                target_id = row.previous_model_version_id
                break
        if target_id is None:
            raise Conflict(f"{serving.name} has no previous model in the activation history to roll back to")
        target = work.models.get(target_id)
        _require_checkpoint(target)
        work.models.activate(target, by=by, note=note, action="rollback")
        work.commit()
        return _activation(work.activations.latest())


def activation_history(*, uow, since: datetime | None = None, until: datetime | None = None) -> list[Activation]:
    """Newest first; with dates, the changes in that window."""
    with uow() as work:
        return [_activation(row) for row in work.activations.history(since=since, until=until)]


def served_between(*, uow, since: datetime, until: datetime | None = None) -> list[ServingPeriod]:
    """Which models served between `since` and `until` (now when None), oldest first:
    the one in force at `since`, then each one activated up to `until`."""
    until = until or datetime.now(timezone.utc)
    if until < since:
        raise UserFacingError("the end of the period is before its start")
    with uow() as work:
        rows = list(reversed(work.activations.history(until=until)))
        periods: list[ServingPeriod] = []
        for i, row in enumerate(rows):
            ended = rows[i + 1].activated_at if i + 1 < len(rows) else None
            if ended is not None and ended <= since:
                continue
            periods.append(ServingPeriod(row.model_version.name, row.activated_at, ended))
        return periods


def _activation(row: ModelActivation) -> Activation:
    return Activation(
        id=row.id, model=row.model_version.name,
        previous_model=row.previous_model_version.name if row.previous_model_version else None,
        action=row.action, activated_by=row.activated_by, note=row.note, forced=row.forced,
        comparison=row.comparison, activated_at=row.activated_at)
