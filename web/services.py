"""What the web app needs from the rest of the system, and the one way to submit a study.

The row is committed before the task is queued, and the task gets only the id.
If queueing fails the row is marked failed with the reason, so nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery
from flask import current_app

from boneage.settings import Settings
from db.files import FileStore
from db.models import Assessment
from db.session import UnitOfWorkFactory
from web.submission import Submission
from worker.config import ASSESS_TASK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    uow: UnitOfWorkFactory
    files: FileStore
    celery: Celery

    def enqueue(self, assessment_id: str) -> None:
        self.celery.send_task(ASSESS_TASK, args=[assessment_id], queue=self.settings.inference_queue)


def services() -> Services:
    return current_app.extensions["boneage"]


def submit(submission: Submission, svc: Services) -> str:
    """Store the upload, commit the job, queue it; returns the assessment id."""
    sha256, path = svc.files.put_upload(submission.image)
    with svc.uow() as uow:
        assessment = uow.assessments.add(
            Assessment(
                image_sha256=sha256,
                image_path=path,
                sex=submission.sex,
                chronological_age_months=submission.chronological_age_months,
                reference=submission.reference,
            )
        )
        uow.commit()
        assessment_id = assessment.id
    try:
        svc.enqueue(assessment_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: record it on the job
        log.exception("could not queue assessment %s", assessment_id)
        with svc.uow() as uow:
            uow.assessments.get(assessment_id).mark_failed(
                "The assessment could not be queued because the task queue is unavailable "
                f"({type(exc).__name__}). Please submit the study again later."
            )
            uow.commit()
    return assessment_id
