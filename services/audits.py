"""Audit use cases: run an audit of a window and store it (services.audit_metrics does
the numbers, core.audit_rules the findings), the scheduled nightly run, and removal.

A run is stored first (status running) under a unique key, then computed and completed.
Scheduled runs have the key "schedule:<from>:<to>", so however often beat fires for a
window, and however many beat processes run, one run exists for it: the second insert
violates the unique constraint and that trigger does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError

from core.audit_rules import SCHEDULE_TRIGGER, TRIGGERS, AuditParameters, findings_for, parse_window, run_key
from core.errors import UserFacingError
from db.audit_models import AuditRun
from services.audit_metrics import AuditRow, accuracy, monitoring

log = logging.getLogger(__name__)

MAX_IMAGES_FOR_STATISTICS = 300  # per side (window, reference): the image statistics are sampled


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def run_audit(start, end, *, trigger: str, uow, files=None, parameters: dict[str, Any] | None = None,
              clock: Callable[[], datetime] = utcnow, synthetic: bool = False) -> AuditRun | None:
    """Audit [start, end) and store the run; returns it, or None when a run with the same
    key (a scheduled run of this window) exists already."""
    if trigger not in TRIGGERS:
        raise UserFacingError(f"unknown trigger {trigger!r}")
    start, end = parse_window(start, end)
    params = AuditParameters.from_dict(parameters)
    run = AuditRun(trigger=trigger, window_start=start, window_end=end, parameters=params.to_dict(),
                   created_at=clock(), synthetic=synthetic)
    if trigger == SCHEDULE_TRIGGER:
        run.unique_key = run_key(trigger, start, end)
    run_id = run.id
    try:
        with uow() as work:
            if work.audits.get_by_key(run.unique_key) is not None:
                log.info("audit %s exists already; not run again", run.unique_key)
                return None
            work.audits.add(run)
            work.commit()
    except IntegrityError:
        log.info("audit %s was started by another trigger; not run again", run.unique_key)
        return None

    try:
        results = compute_audit(start, end, params, uow=uow, files=files)
        findings = findings_for(results, params)
    except Exception as exc:  # noqa: BLE001 - stored on the run, which the page shows
        log.exception("audit %s failed", run_id)
        return _finish(uow, run_id, clock, status="failed",
                       error=f"The audit failed ({type(exc).__name__}: {str(exc)[:300]}).")
    log.info("audit %s of %s to %s: %d finding(s)", run_id, start, end, len(findings))
    return _finish(uow, run_id, clock, status="succeeded", results=results, findings=findings,
                   finding_count=len(findings),
                   model_version_ids=[v["model_version_id"] for v in results["versions"]])


def run_scheduled_audit(*, uow, files=None, window_days: int = 7, parameters: dict | None = None,
                        clock: Callable[[], datetime] = utcnow) -> AuditRun | None:
    """The nightly run: the `window_days` whole days before today (UTC)."""
    from core.audit_rules import scheduled_window

    start, end = scheduled_window(clock(), window_days)
    return run_audit(start, end, trigger=SCHEDULE_TRIGGER, uow=uow, files=files, parameters=parameters, clock=clock)


def _finish(uow, run_id: str, clock, **values) -> AuditRun:
    with uow() as work:
        run = work.audits.get(run_id)
        for name, value in values.items():
            setattr(run, name, value)
        run.finished_at = clock()
        work.commit()
        return run


def compute_audit(start: datetime, end: datetime, params: AuditParameters, *, uow, files=None) -> dict[str, Any]:
    reference_start = start - timedelta(days=params.reference_days)
    with uow() as work:
        window_rows = load_rows(work, start, end, files, readings=True)
        reference_rows = load_rows(work, reference_start, start, files, readings=False)
        models = {m.id: m for m in work.models.all()}

    versions = []
    for version_id in sorted({r.model_version_id for r in window_rows if r.model_version_id is not None}):
        model = models.get(version_id)
        labelled = [r for r in window_rows if r.model_version_id == version_id and r.status == "succeeded"
                    and r.readings and r.bone_age_months is not None]
        # The bootstrap resamples rows by position: a fixed order makes the intervals reproducible.
        labelled.sort(key=lambda r: (r.created_at, r.id))
        metrics = (model.metrics or {}) if model else {}
        validation_mae = metrics.get("val_mae", metrics.get("validation_mae"))
        versions.append({
            "model_version_id": version_id,
            "model_name": model.name if model else f"#{version_id}",
            "model_label": model.label if model else None,
            "model_synthetic": bool(model and model.synthetic),
            "validation_mae": float(validation_mae) if validation_mae is not None else None,
            "n_assessments": sum(1 for r in window_rows if r.model_version_id == version_id),
            **accuracy(labelled, params),
        })
    days = (end - start).total_seconds() / 86400
    return {
        "window": {"from": start.isoformat(), "to": end.isoformat(), "days": days},
        "reference": {"from": reference_start.isoformat(), "to": start.isoformat(), "days": params.reference_days,
                      "kind": "the period before the window"},
        "n_assessments": len(window_rows),
        "n_with_readings": sum(1 for r in window_rows if r.readings),
        "versions": versions,
        "monitoring": monitoring(window_rows, reference_rows, params, days, params.reference_days),
    }


def load_rows(work, start: datetime, end: datetime, files=None, *, readings: bool = True) -> list[AuditRow]:
    assessments = work.audits.assessments_between(start, end)
    found = work.readings.for_assessments([a.id for a in assessments]) if readings else {}
    rows = [
        AuditRow(id=a.id, created_at=a.created_at, status=str(a.status), sex=a.sex,
                 chronological_age_months=a.chronological_age_months, bone_age_months=a.bone_age_months,
                 model_version_id=a.model_version_id, inference_seconds=a.inference_seconds, error=a.error,
                 heatmap_in_hand=a.heatmap_in_hand, readings=[r.bone_age_months for r in found.get(a.id, [])])
        for a in assessments
    ]
    if files is not None:
        _image_statistics(rows, {a.id: a.image_path for a in assessments}, files)
    return rows


def _image_statistics(rows: list[AuditRow], paths: dict[str, str], files) -> None:
    """Mean and SD of intensity for up to MAX_IMAGES_FOR_STATISTICS images, evenly spaced."""
    from core.imageio import ImageDecodeError, decode_image

    step = max(1, len(rows) // MAX_IMAGES_FOR_STATISTICS)
    for row in rows[::step]:
        try:
            pixels = decode_image(files.read(paths[row.id]))
        except (FileNotFoundError, ImageDecodeError, OSError):
            continue
        row.image_mean, row.image_std = float(pixels.mean()), float(pixels.std())


def remove_synthetic(*, uow, files=None) -> dict[str, int]:
    """Delete what the demonstration history created: its assessments (and their files),
    synthetic readings and synthetic audit runs."""
    with uow() as work:
        removed = work.audits.delete_synthetic()
        work.commit()
    paths = removed.pop("files")
    if files is not None:
        shared = set()
        for path in paths:
            if path not in shared:
                files.delete(path)
                shared.add(path)
    return removed
