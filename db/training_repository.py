"""Repositories of the training tables (issue 7): datasets, training jobs with their
epoch rows, and the model activation history. Job status changes are guarded writes
(core.training_status), as for assessments in db.repository."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from core.training_status import TrainingStatus, sources_of
from db.models import Dataset, ModelActivation, TrainingEpoch, TrainingJob


class DatasetRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def get(self, dataset_id: int) -> Dataset | None:
        return self.session.get(Dataset, dataset_id)

    def get_by_name(self, name: str) -> Dataset | None:
        return self.session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()

    def get_by_path(self, path: str) -> Dataset | None:
        return self.session.scalars(select(Dataset).where(Dataset.path == path)).first()

    def all(self) -> list[Dataset]:
        return list(self.session.scalars(select(Dataset).order_by(Dataset.name)))


class TrainingJobRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, job: TrainingJob) -> TrainingJob:
        self.session.add(job)
        self.session.flush()
        return job

    def get(self, job_id: str) -> TrainingJob | None:
        return self.session.get(TrainingJob, job_id)

    def recent(self, limit: int = 50) -> list[TrainingJob]:
        return list(self.session.scalars(select(TrainingJob).order_by(TrainingJob.created_at.desc()).limit(limit)))

    def claim(self, job: TrainingJob, *, now: datetime, stale_before: datetime) -> int | None:
        """Queued (or running with a heartbeat older than `stale_before`) -> running, as a
        new attempt; None when another delivery owns it or it is stopped."""
        seen = job.attempts
        claimable = or_(
            TrainingJob.status == TrainingStatus.QUEUED,
            and_(TrainingJob.status == TrainingStatus.RUNNING, TrainingJob.heartbeat_at < stale_before),
        )
        won = self._update(and_(TrainingJob.id == job.id, TrainingJob.attempts == seen, claimable),
                           status=TrainingStatus.RUNNING, attempts=seen + 1, started_at=now, heartbeat_at=now,
                           error=None, finished_at=None)
        return seen + 1 if won else None

    def transition(self, job_id: str, target: TrainingStatus, *, attempt: int | None = None, **values) -> bool:
        conditions = [TrainingJob.id == job_id, TrainingJob.status.in_(sources_of(target))]
        if attempt is not None:
            conditions.append(TrainingJob.attempts == attempt)
        return self._update(and_(*conditions), status=target, **values)

    def heartbeat(self, job_id: str, attempt: int, now: datetime, **values) -> TrainingStatus | None:
        """Record that `attempt` is alive; returns the stored status, or None when the job
        is no longer this attempt's (taken over or marked crashed)."""
        won = self._update(
            and_(TrainingJob.id == job_id, TrainingJob.attempts == attempt,
                 TrainingJob.status.in_((TrainingStatus.RUNNING, TrainingStatus.CANCELLING))),
            heartbeat_at=now, **values)
        if not won:
            return None
        return self.session.scalar(select(TrainingJob.status).where(TrainingJob.id == job_id))

    def mark_stale_crashed(self, *, now: datetime, stale_before: datetime) -> list[str]:
        """Running or cancelling jobs whose heartbeat is older than `stale_before` -> crashed."""
        stale = list(self.session.scalars(select(TrainingJob.id).where(
            TrainingJob.status.in_((TrainingStatus.RUNNING, TrainingStatus.CANCELLING)),
            TrainingJob.heartbeat_at < stale_before)))
        crashed = []
        for job_id in stale:
            if self._update(and_(TrainingJob.id == job_id,
                                 TrainingJob.status.in_(sources_of(TrainingStatus.CRASHED)),
                                 TrainingJob.heartbeat_at < stale_before),
                            status=TrainingStatus.CRASHED, finished_at=now,
                            error="The training worker stopped sending heartbeats (it died or was killed). "
                                  "Resume the job to continue from its last checkpoint."):
                crashed.append(job_id)
        return crashed

    def _update(self, condition, **values) -> bool:
        result = self.session.execute(
            update(TrainingJob).where(condition).values(**values).execution_options(synchronize_session="fetch"))
        return result.rowcount == 1

    # -- epoch rows ---------------------------------------------------------------
    def record_epoch(self, epoch: TrainingEpoch) -> None:
        """Insert an epoch row, replacing one for the same epoch (a resumed run redoes it)."""
        self.session.execute(delete(TrainingEpoch).where(TrainingEpoch.job_id == epoch.job_id,
                                                         TrainingEpoch.epoch >= epoch.epoch))
        self.session.add(epoch)
        self.session.flush()

    def epochs(self, job_id: str) -> list[TrainingEpoch]:
        return list(self.session.scalars(
            select(TrainingEpoch).where(TrainingEpoch.job_id == job_id).order_by(TrainingEpoch.epoch)))


class ActivationRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, activation: ModelActivation) -> ModelActivation:
        self.session.add(activation)
        self.session.flush()
        return activation

    def latest(self) -> ModelActivation | None:
        return self.session.scalars(
            select(ModelActivation).order_by(ModelActivation.activated_at.desc(), ModelActivation.id.desc()).limit(1)
        ).first()

    def history(self, *, since: datetime | None = None, until: datetime | None = None) -> list[ModelActivation]:
        """Newest first; with since/until, the activations in that window."""
        query = select(ModelActivation)
        if since is not None:
            query = query.where(ModelActivation.activated_at >= since)
        if until is not None:
            query = query.where(ModelActivation.activated_at <= until)
        return list(self.session.scalars(query.order_by(ModelActivation.activated_at.desc(),
                                                        ModelActivation.id.desc())))

    def serving_at(self, when: datetime) -> ModelActivation | None:
        """The activation in force at `when` (the latest one at or before it)."""
        return self.session.scalars(
            select(ModelActivation).where(ModelActivation.activated_at <= when)
            .order_by(ModelActivation.activated_at.desc(), ModelActivation.id.desc()).limit(1)
        ).first()
