"""Assessment use cases: submit a study, run it.

submit_assessment stores the upload, its working and display copies (decoded once, here:
core.working_image), commits the job, then queues its id; if the queue refuses, the job is
marked failed with the reason, so nothing is lost.
run_assessment claims the job as a new attempt and, when batching is on, up to
batch_size - 1 other queued jobs (their own messages later find them taken or finished
and do nothing); it predicts them as one batch with the active model and writes each
outcome with its own guarded write, only if the job is still that attempt's (core.status),
so a late duplicate delivery can never overwrite a finished job. One image failing (a
rejected image, an unreadable file) fails that job alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol

from core.deidentify import deidentify
from core.errors import JobFailed
from core.image_checks import check_radiograph
from core.imageio import ImageDecodeError, decode_image
from core.status import JobStatus
from core.submission import Submission
from core.working_image import make_working_image, read_working_image
from db.files import FileStoreUnavailable
from db.models import Assessment
from services.predictors import ActiveModel, PredictorProvider

log = logging.getLogger(__name__)

# A running attempt older than this has outlived the task's hard time limit, so its
# worker is gone and another delivery may take the job over (BONEAGE_ASSESSMENT_LEASE_S).
RUNNING_LEASE = timedelta(minutes=6)

MISSING = "missing"
BATCH_POLL_S = 0.02  # how often a batch waiting to fill looks for more queued jobs


class TaskQueue(Protocol):
    def enqueue_assessment(self, assessment_id: str) -> None: ...


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def submit_assessment(submission: Submission, *, uow, files, queue: TaskQueue, submitted_by: int | None = None) -> str:
    """Store the upload (de-identified) and its working and display copies, commit the job,
    queue it; returns the assessment id. The image is decoded here at most once (not at all
    when parse_submission already did). `submitted_by` is the submitting user's id (a
    submitter sees only their own studies)."""
    data = deidentify(submission.image)
    working = submission.working or make_working_image(data)
    sha256, path = files.put_upload(data)
    working_path, display_path = files.put_working_copies(sha256, working, path)
    with uow() as work:
        assessment = work.assessments.add(
            Assessment(
                image_sha256=sha256,
                image_path=path,
                working_image_path=working_path,
                display_image_path=display_path,
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


@dataclass
class _Job:
    """A claimed job: what running it needs, read when it was claimed."""

    id: str
    attempt: int
    sex: str
    image_path: str
    working_path: str | None
    image: object = None  # the decoded pixels, once read


def run_assessment(
    assessment_id: str,
    *,
    uow,
    files,
    predictors: PredictorProvider,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = RUNNING_LEASE,
    batch_size: int = 1,
    batch_wait_s: float = 0.0,
) -> str:
    """Run one job, and up to batch_size - 1 other queued ones with it (waiting at most
    batch_wait_s for them to arrive); returns this job's status afterwards ('missing' for
    an unknown id)."""
    now = clock()
    with uow() as work:
        assessment = work.assessments.get(assessment_id)
        if assessment is None:
            log.warning("assessment %s does not exist; dropping the task", assessment_id)
            return MISSING
        if assessment.status.finished:
            log.info("assessment %s is already %s; nothing to do", assessment_id, assessment.status)
            return str(assessment.status)
        attempt = work.assessments.claim(assessment, now=now, stale_before=now - lease)
        if attempt is None:
            log.info("assessment %s is being run by another delivery; leaving it", assessment_id)
            return str(JobStatus.RUNNING)
        jobs = [_job(assessment, attempt)]
        work.commit()

    if batch_size > 1:
        jobs += _claim_more(uow, batch_size - 1, exclude=assessment_id, clock=clock, wait_s=batch_wait_s)
        if len(jobs) > 1:
            log.info("assessment %s runs in a batch of %d: %s", assessment_id, len(jobs),
                     ", ".join(job.id for job in jobs[1:]))
    outcomes = _run_batch(jobs, uow=uow, files=files, predictors=predictors, clock=clock)
    return outcomes[assessment_id]


def _job(assessment: Assessment, attempt: int) -> _Job:
    return _Job(assessment.id, attempt, assessment.sex, assessment.image_path, assessment.working_image_path)


def _claim_more(uow, limit: int, *, exclude: str, clock, wait_s: float) -> list[_Job]:
    """Claim up to `limit` other queued jobs, oldest first, looking again until `wait_s`
    has passed while the batch is not full."""
    deadline = time.monotonic() + wait_s
    claimed: list[_Job] = []
    while True:
        with uow() as work:
            taken = work.assessments.claim_queued(limit - len(claimed), now=clock(),
                                                  exclude=[exclude, *(job.id for job in claimed)])
            claimed += [_job(assessment, attempt) for assessment, attempt in taken]
            work.commit()
        remaining = deadline - time.monotonic()
        if len(claimed) >= limit or remaining <= 0:
            return claimed
        time.sleep(min(BATCH_POLL_S, remaining))


def _run_batch(jobs: list[_Job], *, uow, files, predictors: PredictorProvider, clock) -> dict[str, str]:
    """Predict the claimed jobs as one batch; each outcome is written on its own."""
    outcomes: dict[str, str] = {}
    try:
        model = _active_model(uow)
        predictor = predictors.get(model)
    except Exception as exc:  # noqa: BLE001 - no model, or it cannot be loaded: every job fails
        reason = _reason(exc, "the model could not be loaded")
        return {job.id: _fail(uow, job.id, job.attempt, reason, clock) for job in jobs}

    ready = []
    # The database or the file store went away: those jobs stay this attempt's until the
    # lease runs out and the recovery sweep runs them again (up to BONEAGE_MAX_ATTEMPTS).
    errors = []
    for job in jobs:
        try:
            data, job.image = _stored_image(files, job.image_path, job.working_path)
            rejection = check_radiograph(data, job.image)
            if rejection is not None:
                log.info("assessment %s: image rejected (%s)", job.id, rejection.code)
                raise JobFailed(f"The image was not assessed: {rejection.reason}")
            ready.append(job)
        except FileStoreUnavailable as exc:
            log.warning("assessment %s: %s; it will be run again", job.id, exc)
            errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - this image alone fails
            outcomes[job.id] = _fail(uow, job.id, job.attempt, _reason(exc, f"assessment {job.id} failed"), clock)

    for job, prediction in zip(ready, _predict(predictor, ready)):
        try:
            if isinstance(prediction, Exception):
                raise prediction
            outcomes[job.id] = _finish(job, prediction, model, uow=uow, files=files, clock=clock)
        except JobFailed as exc:
            outcomes[job.id] = _fail(uow, job.id, job.attempt, str(exc), clock)
        except Exception as exc:  # noqa: BLE001 - the database went away: the others still get written
            errors.append(exc)
    if errors:
        raise errors[0]
    return outcomes


def _predict(predictor, jobs: list[_Job]) -> list:
    """The batch's predictions; if the batch fails, each image alone, so one image the
    model cannot take fails only its own job (an Exception in its place)."""
    if not jobs:
        return []
    try:
        return predictor.predict([job.image for job in jobs], [job.sex for job in jobs], gradcam=True)
    except Exception as exc:  # noqa: BLE001
        if len(jobs) == 1:
            return [JobFailed(_reason(exc, f"assessment {jobs[0].id} failed"))]
        log.exception("a batch of %d failed; predicting its images one at a time", len(jobs))
    results = []
    for job in jobs:
        try:
            (prediction,) = predictor.predict([job.image], [job.sex], gradcam=True)
            results.append(prediction)
        except Exception as exc:  # noqa: BLE001
            results.append(JobFailed(_reason(exc, f"assessment {job.id} failed")))
    return results


def _reason(exc: Exception, what: str) -> str:
    """The reason stored on a failed job: a JobFailed's own message; for anything else, a
    plain one (the traceback goes to the log)."""
    if isinstance(exc, JobFailed):
        return str(exc)
    log.error("%s", what, exc_info=exc)
    return (f"The assessment failed because of an internal error ({type(exc).__name__}). "
            "It was logged for the administrators.")


def _hand_box(prediction) -> list[float] | None:
    box = getattr(prediction, "hand_box", None)
    return None if box is None else [round(float(v), 4) for v in box]


def _finish(job: _Job, prediction, model: ActiveModel, *, uow, files, clock) -> str:
    """Write one prediction as the job's result (or its rejection by the model)."""
    # Set by the model's own image checks when present (training/predict.py).
    rejection = getattr(prediction, "rejection", None)
    ood_score = getattr(prediction, "ood_score", None)
    notes = list(getattr(prediction, "notes", None) or []) or None
    if rejection:
        log.info("assessment %s: image rejected by the model (%s)", job.id, rejection)
        return _fail(uow, job.id, job.attempt, f"The image was not assessed: {rejection}", clock,
                     ood_score=ood_score, result_notes=notes)
    assessment_id, attempt = job.id, job.attempt
    heatmap_path = None
    if prediction.overlay_png:
        try:
            heatmap_path = files.put_heatmap(f"{assessment_id}-{attempt}", prediction.overlay_png)
        except FileStoreUnavailable:
            raise  # for a while only: run again later (_run_batch)
        except Exception as exc:  # noqa: BLE001 - the file store refused it: this job fails
            raise JobFailed(_reason(exc, f"assessment {assessment_id}: the heatmap could not be stored")) from None
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
                bone_age_low_months=getattr(prediction, "interval_low_months", None),
                bone_age_high_months=getattr(prediction, "interval_high_months", None),
                interval_confidence=getattr(prediction, "interval_confidence", None),
                ood_score=None if ood_score is None else float(ood_score),
                result_notes=notes,
                hand_box=_hand_box(prediction),
                heatmap_in_hand=getattr(prediction, "heatmap_in_hand", None),
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


def _stored_image(files, image_path: str, working_path: str | None = None):
    """The stored upload's bytes (its header: the DICOM tags and colour mode the image
    checks read) and its pixels: the working copy made at submission, or for a study
    stored before working copies existed, the upload decoded."""
    try:
        data = files.read(image_path)
        working = files.read(working_path) if working_path else None
    except FileNotFoundError:
        raise JobFailed(
            "The uploaded image is missing from the file store. Please submit the study again."
        ) from None
    try:
        return data, (read_working_image(working) if working is not None else decode_image(data))
    except ImageDecodeError as exc:
        raise JobFailed(f"The stored image could not be read: {exc}.") from None


def _fail(uow, assessment_id: str, attempt: int, reason: str, clock, **values) -> str:
    log.warning("assessment %s failed: %s", assessment_id, reason)
    with uow() as work:
        won = work.assessments.transition(
            assessment_id, JobStatus.FAILED, attempt=attempt, finished_at=clock(), error=reason, **values
        )
        work.commit()
    if not won:
        log.warning("assessment %s attempt %d: the job changed meanwhile; failure not recorded", assessment_id, attempt)
        return _status(uow, assessment_id)
    return str(JobStatus.FAILED)


def _status(uow, assessment_id: str) -> str:
    with uow() as work:
        return str(work.assessments.get(assessment_id).status)
