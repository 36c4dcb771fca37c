"""The job state machine in core.status."""

from __future__ import annotations

import pytest

from core.status import FINISHED, STATUS_VALUES, JobStatus, can_transition, sources_of

Q, R, S, F = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED


@pytest.mark.parametrize(
    "current, target, allowed",
    [
        (Q, R, True), (Q, F, True), (Q, S, False), (Q, Q, False),
        (R, S, True), (R, F, True), (R, R, True), (R, Q, False),
        (S, Q, False), (S, R, False), (S, F, False), (S, S, False),
        (F, Q, False), (F, R, False), (F, S, False), (F, F, False),
    ],
)
def test_transitions(current, target, allowed):
    assert can_transition(current, target) is allowed
    assert (current in sources_of(target)) is allowed


def test_finished_states_are_final():
    assert FINISHED == {S, F}
    assert [s for s in JobStatus if s.finished] == [S, F]
    for status in FINISHED:
        assert not any(can_transition(status, target) for target in JobStatus)


def test_values_are_the_stored_strings():
    assert STATUS_VALUES == ("queued", "running", "succeeded", "failed")
    assert JobStatus("running") is R and str(R) == "running" and R == "running"
    assert sources_of("succeeded") == {R} and sources_of(F) == {Q, R}


def test_only_a_job_that_failed_without_starting_was_refused_by_the_queue():
    from datetime import datetime, timezone

    from core.status import refused_by_queue

    started = datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert refused_by_queue("failed", None)
    assert not refused_by_queue("failed", started)  # a fast worker's failure: it was queued
    assert not refused_by_queue("queued", None)
    assert not refused_by_queue("succeeded", started)
