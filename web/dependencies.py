"""What the web app's handlers work with, built once by the app factory:
settings, the unit-of-work factory, the file store and the task queue."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from core.settings import Settings
from db.files import FileStore
from db.session import UnitOfWorkFactory
from core.submission import Submission
from services.assessments import submit_assessment
from services.queue import CeleryTaskQueue


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    uow: UnitOfWorkFactory
    files: FileStore
    queue: CeleryTaskQueue


def deps() -> Dependencies:
    return current_app.extensions["boneage"]


def submit(submission: Submission) -> str:
    """The one way the web submits a study (the form and the API)."""
    d = deps()
    from web.access import caller_id

    return submit_assessment(submission, uow=d.uow, files=d.files, queue=d.queue, submitted_by=caller_id())
