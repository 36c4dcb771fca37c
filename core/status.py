"""Job statuses and the one place that says which changes are allowed.

    queued ──► running ──► succeeded
       │          │  ▲
       │          │  └── running (a stale job taken over by a new attempt)
       └──────────┴────► failed

Nothing leaves a finished state. Storage applies these rules as conditions on its
writes (UPDATE ... WHERE status IN sources_of(target)), so two writers can never
both win.
"""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
}

STATUS_VALUES = tuple(status.value for status in JobStatus)


def sources_in(transitions: dict, target) -> frozenset:
    """The states a job may be in for a move to `target` to be allowed by `transitions`."""
    return frozenset(state for state, targets in transitions.items() if target in targets)


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in TRANSITIONS[JobStatus(current)]


def sources_of(target: JobStatus | str) -> frozenset[JobStatus]:
    """The statuses a job may be in for a move to `target` to be allowed."""
    return sources_in(TRANSITIONS, JobStatus(target))


def refused_by_queue(status: str, started_at) -> bool:
    """A job the queue refused at submission: failed without ever being started. A job a fast
    worker has already started and failed (e.g. on a changed checkpoint) was queued."""
    return status == JobStatus.FAILED and started_at is None
