"""Celery tasks: each translates a message into one service call. They receive
ids, never ORM objects, and keep their results in the database (Celery's own
results are ignored)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from db.files import open_file_store
from db.session import unit_of_work_factory
from services.assessments import run_assessment
from services.audits import run_scheduled_audit
from services.predictors import PredictorCache
from services.queue import ASSESS_TASK, AUDIT_TASK, RECOVER_TASK, RETENTION_TASK, TRAIN_TASK, CeleryTaskQueue
from services.recovery import recover_assessments
from services.retention import delete_expired_images
from services.training_jobs import run_training_job
from worker.celery_app import celery, settings

# The model is loaded once per worker process, on the first assessment.
predictors = PredictorCache(device=settings.device)


@lru_cache(maxsize=1)
def _uow():
    return unit_of_work_factory(settings.database_url)


@celery.task(name=ASSESS_TASK)
def assess(assessment_id: str) -> str:
    return run_assessment(assessment_id, uow=_uow(), files=open_file_store(settings), predictors=predictors,
                          lease=timedelta(seconds=settings.assessment_lease_s),
                          batch_size=settings.batch_size, batch_wait_s=settings.batch_wait_s)


@celery.task(name=RECOVER_TASK)
def recover() -> dict:
    """Send again the assessments no worker is on; fail those past the attempt limit."""
    outcome = recover_assessments(uow=_uow(), queue=CeleryTaskQueue(celery, settings),
                                  lease=timedelta(seconds=settings.assessment_lease_s),
                                  resend_after=timedelta(seconds=settings.resend_after_s),
                                  max_attempts=settings.max_attempts)
    return {"resent": outcome.resent, "failed": outcome.failed}


@celery.task(name=RETENTION_TASK)
def delete_expired() -> list[str]:
    """Delete the images of studies older than the retention period (the numbers stay)."""
    if not settings.retention_days:
        return []
    return delete_expired_images(uow=_uow(), files=open_file_store(settings),
                                 retention=timedelta(days=settings.retention_days))


@celery.task(name=AUDIT_TASK)
def audit(window_days: int | None = None) -> str | None:
    """The scheduled audit of the last whole days (services.audits), stored in the database;
    at most one run per window, however often it is triggered. Returns the run's id."""
    run = run_scheduled_audit(uow=_uow(), files=open_file_store(settings),
                              window_days=window_days or settings.audit_window_days)
    return run.id if run else None


# Acknowledged on receipt: a training worker that dies mid-job leaves the job to be
# detected by its stale heartbeat (crashed) and resumed on request, not redelivered.
@celery.task(name=TRAIN_TASK, acks_late=False)
def train(job_id: str) -> str:
    return run_training_job(job_id, uow=_uow(), files=open_file_store(settings), files_dir=settings.files_dir,
                            data_root=settings.datasets_dir, model_dir=settings.model_dir,
                            heartbeat_s=settings.training_heartbeat_s, stale_s=settings.training_stale_s)
