"""Training job statuses and the one place that says which changes are allowed.

    queued ──► running ──► succeeded
      │  ▲        │  │
      │  │        │  ├──► failed
      │  │        │  ├──► crashed      (its heartbeat stopped: the worker died)
      │  │        ▼  │
      │  │    cancelling ──► cancelled (the callback saw the flag at a batch boundary)
      │  │                      │
      │  └── resume ◄───────────┴── crashed   (from its last.pt)
      └──► cancelled (revoked before it started), failed (the queue refused it)

`succeeded` and `failed` are final. `cancelled` and `crashed` are stopped states
from which a job may be queued again to resume from its last checkpoint. Storage
applies these rules as conditions on its writes (UPDATE ... WHERE status IN
sources_of(target)), as for assessments (core.status).
"""

from __future__ import annotations

import enum

from core.status import sources_in


class TrainingStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CRASHED = "crashed"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """No worker is (or will be) working on it."""
        return self in STOPPED

    @property
    def active(self) -> bool:
        return not self.finished

    @property
    def resumable(self) -> bool:
        return self in RESUMABLE


T = TrainingStatus
STOPPED = frozenset({T.SUCCEEDED, T.FAILED, T.CANCELLED, T.CRASHED})
RESUMABLE = frozenset({T.CANCELLED, T.CRASHED})

TRAINING_TRANSITIONS: dict[TrainingStatus, frozenset[TrainingStatus]] = {
    T.QUEUED: frozenset({T.RUNNING, T.CANCELLED, T.FAILED}),
    # running -> running: a new attempt takes over a job whose heartbeat is stale
    T.RUNNING: frozenset({T.RUNNING, T.CANCELLING, T.SUCCEEDED, T.FAILED, T.CRASHED}),
    T.CANCELLING: frozenset({T.CANCELLED, T.FAILED, T.CRASHED}),
    T.CANCELLED: frozenset({T.QUEUED}),
    T.CRASHED: frozenset({T.QUEUED}),
    T.SUCCEEDED: frozenset(),
    T.FAILED: frozenset(),
}

TRAINING_STATUS_VALUES = tuple(status.value for status in TrainingStatus)


def can_transition(current: TrainingStatus | str, target: TrainingStatus | str) -> bool:
    return TrainingStatus(target) in TRAINING_TRANSITIONS[TrainingStatus(current)]


def sources_of(target: TrainingStatus | str) -> frozenset[TrainingStatus]:
    return sources_in(TRAINING_TRANSITIONS, TrainingStatus(target))
