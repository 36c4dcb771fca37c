"""Assessment use cases: submit a study, run it.

submit_assessment stores the upload, commits the job, then queues its id; if the
queue refuses, the job is marked failed with the reason, so nothing is lost.
run_assessment claims the job as a new attempt, predicts with the active model and
writes the outcome only if the job is still that attempt's (core.status), so a
late duplicate delivery can never overwrite a finished job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol

from core.deidentify import deidentify
from core.errors import JobFailed
from core.image_checks import check_radiograph
from core.imageio import ImageDecodeError, decode_image
from core.status import JobStatus
from core.submission import Submission
from db.models import Assessment
from services.predictors import ActiveModel, PredictorProvider

log = logging.getLogger(__name__)

# A running attempt older than this has outlived the task's hard time limit, so its
# worker is gone and another delivery may take the job over (BONEAGE_ASSESSMENT_LEASE_S).
RUNNING_LEASE = timedelta(minutes=6)

MISSING = "missing"


class TaskQueue(Protocol):
    def enqueue_assessment(self, assessment_id: str) -> None: ...


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def submit_assessment(submission: Submission, *, uow, files, queue: TaskQueue, submitted_by: int | None = None) -> str:
    """Store the upload (de-identified), commit the job, queue it; returns the assessment id.
    `submitted_by` is the submitting user's id (a submitter sees only their own studies)."""
    sha256, path = files.put_upload(deidentify(submission.image))
    with uow() as work:
        assessment = work.assessments.add(
            Assessment(
                image_sha256=sha256,
                image_path=path,
                sex=submission.sex,
                chronological_age_months=submission.chronological_age_months,
                reference=submission.reference,
                submitted_by_id=submitted_by,
                sends=1,  # counted before the send: a web process that dies right after the
                enqueued_at=utcnow(),  # commit leaves a job the recovery sweep sends again
            )
        )
        work.commit()
        assessment_id = assessment.id
    try:
        queue.enqueue_assessment(assessment_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: record it on the job
        log.exception("could not queue assessment %s", assessment_id)
        with uow() as work:
            work.assessments.transition(
                assessment_id,
                JobStatus.FAILED,
                finished_at=utcnow(),
                error="The assessment could not be queued because the task queue is unavailable "
                f"({type(exc).__name__}). Please submit the study again later.",
            )
            work.commit()
    return assessment_id


def run_assessment(
    assessment_id: str,
    *,
    uow,
    files,
    predictors: PredictorProvider,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = RUNNING_LEASE,
) -> str:
    """Run one job; returns its status afterwards ('missing' for an unknown id)."""
    now = clock()
    with uow() as work:
        assessment = work.assessments.get(assessment_id)
        if assessment is None:
            log.warning("assessment %s does not exist; dropping the task", assessment_id)
            return MISSING
        if assessment.status.finished:
            log.info("assessment %s is already %s; nothing to do", assessment_id, assessment.status)
            return str(assessment.status)
        sex, image_path = assessment.sex, assessment.image_path
        attempt = work.assessments.claim(assessment, now=now, stale_before=now - lease)
        if attempt is None:
            log.info("assessment %s is being run by another delivery; leaving it", assessment_id)
            return str(JobStatus.RUNNING)
        work.commit()

    heatmap_path = None
    try:
        model = _active_model(uow)
        predictor = predictors.get(model)
        data, image = _stored_image(files, image_path)
        rejection = check_radiograph(data, image)
        if rejection is not None:
            log.info("assessment %s: image rejected (%s)", assessment_id, rejection.code)
            raise JobFailed(f"The image was not assessed: {rejection.reason}")
        (prediction,) = predictor.predict([image], [sex], gradcam=True)
        if prediction.overlay_png:
            heatmap_path = files.put_heatmap(f"{assessment_id}-{attempt}", prediction.overlay_png)
    except JobFailed as exc:
        return _fail(uow, assessment_id, attempt, str(exc), clock)
    except Exception as exc:  # noqa: BLE001 - anything else: log it, tell the user plainly
        log.exception("assessment %s failed", assessment_id)
        return _fail(
            uow,
            assessment_id,
            attempt,
            f"The assessment failed because of an internal error ({type(exc).__name__}). "
            "It was logged for the administrators.",
            clock,
        )

    try:
        with uow() as work:
            won = work.assessments.transition(
                assessment_id,
                JobStatus.SUCCEEDED,
                attempt=attempt,
                finished_at=clock(),
                bone_age_months=float(prediction.bone_age_months),
                stage=prediction.stage,
                heatmap_path=heatmap_path,
                bone_age_low_months=prediction.interval_low_months,
                bone_age_high_months=prediction.interval_high_months,
                interval_confidence=prediction.interval_confidence,
                model_version_id=model.id,
                inference_seconds=float(prediction.seconds),
                error=None,
            )
            work.commit()
    except Exception:
        # The database went away before the result was written: the job stays this
        # attempt's until the lease runs out and another attempt runs it. This attempt's
        # heatmap must not stay beside that one's (one job, one heatmap).
        if heatmap_path:
            files.delete(heatmap_path)
        raise
    if won:
        # An earlier attempt killed between writing its heatmap and writing the result
        # (SIGKILL, OOM) left its file behind; the job's one result is this attempt's.
        for earlier in range(1, attempt):
            files.delete(f"heatmaps/{assessment_id}-{earlier}.png")
    if not won:
        log.warning("assessment %s attempt %d: the job changed meanwhile; result discarded", assessment_id, attempt)
        if heatmap_path:
            files.delete(heatmap_path)
        return _status(uow, assessment_id)
    log.info("assessment %s: %.1f months (%s) with %s", assessment_id, prediction.bone_age_months,
             prediction.stage, model.name)
    return str(JobStatus.SUCCEEDED)


def _active_model(uow) -> ActiveModel:
    with uow() as work:
        active = work.models.active()
        if active is None:
            raise JobFailed(
                "No model is registered and active. An administrator must run "
                "`boneage register-model PATH --activate` (or `boneage up`, which trains a demo model)."
            )
        return ActiveModel(active.id, active.name, Path(active.checkpoint_path), active.checkpoint_sha256)


def _stored_image(files, image_path: str):
    """The stored upload's bytes and decoded pixels, each read once."""
    try:
        data = files.read(image_path)
    except FileNotFoundError:
        raise JobFailed(
            "The uploaded image is missing from the file store. Please submit the study again."
        ) from None
    try:
        return data, decode_image(data)
    except ImageDecodeError as exc:
        raise JobFailed(f"The stored image could not be read: {exc}.") from None


def _fail(uow, assessment_id: str, attempt: int, reason: str, clock) -> str:
    log.warning("assessment %s failed: %s", assessment_id, reason)
    with uow() as work:
        won = work.assessments.transition(
            assessment_id, JobStatus.FAILED, attempt=attempt, finished_at=clock(), error=reason
        )
        work.commit()
    if not won:
        log.warning("assessment %s attempt %d: the job changed meanwhile; failure not recorded", assessment_id, attempt)
        return _status(uow, assessment_id)
    return str(JobStatus.FAILED)


def _status(uow, assessment_id: str) -> str:
    with uow() as work:
        return str(work.assessments.get(assessment_id).status)
