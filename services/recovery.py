"""Recovery: the database decides which jobs need a worker; the queue only wakes one.

A job can lose its message: the web process died between committing the row and
sending, a worker was killed after taking the message (the filesystem transport
does not hand it back), or the broker lost it. The sweep finds every assessment
that is queued, or running in an attempt older than the lease, whose message was
last sent longer ago than `resend_after` (doubling with each send for a queued job),
and sends it again, up to `max_attempts` sends or runs; then it fails the job with a
reason the user can read. Sending twice
is harmless: run_assessment claims a job only when it is queued or stale, and
writes only as the attempt that claimed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from core.status import JobStatus
from services.assessments import TaskQueue, utcnow

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def recover_assessments(
    *,
    uow,
    queue: TaskQueue,
    lease: timedelta,
    resend_after: timedelta,
    max_attempts: int,
    clock: Callable[[], datetime] = utcnow,
) -> Recovery:
    now = clock()
    outcome = Recovery()
    with uow() as work:
        jobs = work.assessments.needing_recovery(resend_before=now - resend_after, stale_before=now - lease)
        for job in jobs:
            if not _due(job, now, resend_after):
                continue
            reason = _give_up_reason(job, max_attempts)
            if reason is not None:
                expected_attempt = job.attempts if job.status is JobStatus.RUNNING else None
                if work.assessments.transition(job.id, JobStatus.FAILED, attempt=expected_attempt,
                                               finished_at=now, error=reason):
                    outcome.failed.append(job.id)
            elif work.assessments.record_send(job, now=now):
                outcome.resent.append(job.id)
        work.commit()
    for assessment_id in outcome.resent:
        try:
            queue.enqueue_assessment(assessment_id)
        except Exception:  # noqa: BLE001 - the broker is down: the next sweep tries again
            log.exception("could not send assessment %s again; the next sweep will retry", assessment_id)
    if outcome.resent or outcome.failed:
        log.warning("recovery: sent %d job(s) again %s, failed %d %s", len(outcome.resent), outcome.resent,
                    len(outcome.failed), outcome.failed)
    return outcome


def _due(job, now: datetime, resend_after: timedelta) -> bool:
    """A queued job waits twice as long before each further send: a job that is only
    behind a long backlog is not failed for it, while a lost message is still resent."""
    if job.status is not JobStatus.QUEUED or job.sends <= 1:
        return True
    last_sent = job.enqueued_at or job.created_at
    return last_sent < now - resend_after * 2 ** (job.sends - 1)


def _give_up_reason(job, max_attempts: int) -> str | None:
    if job.status is JobStatus.RUNNING and job.attempts >= max_attempts:
        return (f"The assessment was started {job.attempts} times and each time its worker stopped before "
                "finishing. Please submit the study again; if it happens again, tell an administrator.")
    if job.status is JobStatus.QUEUED and job.sends >= max_attempts:
        return (f"The assessment was sent to the workers {job.sends} times and none started it. "
                "Please submit the study again later; an administrator should check that workers are running.")
    return None
