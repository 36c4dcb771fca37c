"""Celery tasks. They receive ids, never ORM objects, and keep their results in the
database (Celery's own results are ignored)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from functools import lru_cache

from db.files import FileStore
from db.session import unit_of_work_factory
from worker.celery_app import celery, settings
from worker.config import ASSESS_TASK, AUDIT_TASK
from worker.inference import run_assessment

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _uow_factory():
    return unit_of_work_factory(settings.database_url)


@celery.task(name=ASSESS_TASK)
def assess(assessment_id: str) -> str:
    return run_assessment(
        assessment_id, settings=settings, uow_factory=_uow_factory(), files=FileStore(settings.files_dir)
    )


@celery.task(name=AUDIT_TASK)
def audit() -> dict:
    """Daily fairness audit: stored predictions summarised by sex, written to
    <files>/audit/<date>.json and logged."""
    with _uow_factory()() as uow:
        by_sex = uow.assessments.summary_by_sex()
    now = datetime.now(timezone.utc)
    report = {"generated_at": now.isoformat(timespec="seconds"), "by_sex": by_sex}
    target = settings.files_dir / "audit" / f"{now:%Y-%m-%d}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(target)
    log.info("audit by sex: %s", json.dumps(by_sex))
    return report
