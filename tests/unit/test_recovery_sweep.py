"""The recovery sweep (services.recovery) with fakes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core.status import JobStatus
from db.models import Assessment
from services.recovery import recover_assessments

from fakes import FakeQueue, FakeUnitOfWork

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
LEASE, RESEND = timedelta(minutes=6), timedelta(minutes=5)


def job(uow, status=JobStatus.QUEUED, *, sent_ago=timedelta(minutes=10), started_ago=None, attempts=0, sends=1):
    assessment = Assessment(status=status, sex="F", image_sha256="a", image_path="x", attempts=attempts, sends=sends,
                            created_at=NOW - timedelta(hours=1), enqueued_at=NOW - sent_ago,
                            started_at=None if started_ago is None else NOW - started_ago)
    return uow.assessments.add(assessment)


def sweep(uow, queue=None):
    queue = queue or FakeQueue()
    return recover_assessments(uow=uow, queue=queue, lease=LEASE, resend_after=RESEND, max_attempts=3,
                               clock=lambda: NOW), queue


def test_a_queued_job_whose_message_was_lost_is_sent_again():
    uow = FakeUnitOfWork()
    lost = job(uow, sent_ago=timedelta(minutes=10))
    outcome, queue = sweep(uow)
    assert outcome.resent == queue.sent == [lost.id]
    assert (lost.sends, lost.enqueued_at, lost.status) == (2, NOW, JobStatus.QUEUED)


def test_a_recently_sent_or_fresh_running_job_is_left_alone():
    uow = FakeUnitOfWork()
    job(uow, sent_ago=timedelta(minutes=1))
    job(uow, JobStatus.RUNNING, started_ago=timedelta(minutes=1), attempts=1)
    outcome, queue = sweep(uow)
    assert outcome.resent == outcome.failed == queue.sent == []


def test_a_running_job_whose_worker_died_is_sent_again():
    uow = FakeUnitOfWork()
    stale = job(uow, JobStatus.RUNNING, started_ago=timedelta(minutes=7), attempts=1)
    outcome, queue = sweep(uow)
    assert queue.sent == [stale.id] and stale.status is JobStatus.RUNNING and stale.sends == 2


def test_finished_jobs_are_never_touched():
    uow = FakeUnitOfWork()
    job(uow, JobStatus.SUCCEEDED, started_ago=timedelta(hours=1), attempts=1)
    job(uow, JobStatus.FAILED)
    outcome, queue = sweep(uow)
    assert queue.sent == [] and outcome.failed == []


def test_past_the_attempt_limit_the_job_fails_with_a_reason():
    uow = FakeUnitOfWork()
    crashed = job(uow, JobStatus.RUNNING, started_ago=timedelta(minutes=7), attempts=3, sends=3)
    undelivered = job(uow, sends=3, sent_ago=timedelta(minutes=25))  # past 4 x RESEND
    outcome, queue = sweep(uow)
    assert queue.sent == [] and set(outcome.failed) == {crashed.id, undelivered.id}
    assert crashed.status is JobStatus.FAILED and "started 3 times" in crashed.error and crashed.finished_at == NOW
    assert undelivered.status is JobStatus.FAILED and "sent to the workers 3 times" in undelivered.error


def test_a_broker_that_is_down_leaves_the_job_for_the_next_sweep():
    uow = FakeUnitOfWork()
    lost = job(uow)
    outcome, _ = sweep(uow, FakeQueue(error=ConnectionError("down")))
    assert outcome.resent == [lost.id] and lost.status is JobStatus.QUEUED


def test_a_queued_job_waits_twice_as_long_before_each_further_send():
    uow = FakeUnitOfWork()
    waited_once = job(uow, sends=2, sent_ago=RESEND + timedelta(minutes=1))  # needs 2 x RESEND
    waited_enough = job(uow, sends=2, sent_ago=2 * RESEND + timedelta(minutes=1))
    outcome, queue = sweep(uow)
    assert queue.sent == [waited_enough.id] and waited_once.sends == 2
