"""Repositories: the only place that builds queries against the tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core.status import JobStatus, sources_of
from db.models import Assessment, ModelActivation, ModelVersion


class AssessmentRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, assessment: Assessment) -> Assessment:
        self.session.add(assessment)
        self.session.flush()
        return assessment

    def get(self, assessment_id: str) -> Assessment | None:
        return self.session.get(Assessment, assessment_id)

    def claim(self, assessment: Assessment, *, now: datetime, stale_before: datetime | None) -> int | None:
        """Move a queued job (or a running one whose attempt started before
        `stale_before`, so its worker is gone; None: queued jobs only) to running, as a
        new attempt.

        Returns the new attempt number, or None when another delivery owns the job or
        it is finished. Conditional on the status and attempt count read in `assessment`,
        so of two deliveries racing for the same job exactly one wins.
        """
        seen_attempts = assessment.attempts
        claimable = Assessment.status == JobStatus.QUEUED
        if stale_before is not None:
            claimable = or_(
                claimable, and_(Assessment.status == JobStatus.RUNNING, Assessment.started_at < stale_before)
            )
        won = self._update(
            and_(Assessment.id == assessment.id, Assessment.attempts == seen_attempts, claimable),
            status=JobStatus.RUNNING,
            attempts=seen_attempts + 1,
            started_at=now,
            error=None,
            queue_wait_seconds=max(0.0, (now - assessment.created_at).total_seconds()),
        )
        return seen_attempts + 1 if won else None

    def claim_queued(self, limit: int, *, now: datetime, exclude=()) -> list[tuple[Assessment, int]]:
        """Claim up to `limit` queued jobs, oldest first, to run in one batch with a job
        already claimed: each by the same guarded write as claim(); returns (job, attempt)
        for those won. On PostgreSQL the rows are locked with FOR UPDATE SKIP LOCKED, so
        two workers filling batches at once take different jobs and never wait for each
        other; SQLite, which has no row locks, serialises the writes, and the guard lets
        exactly one of two racing claims win."""
        if limit <= 0:
            return []
        # The rows themselves in the one locking query (not their ids, then one SELECT each).
        candidates = self.session.scalars(
            select(Assessment)
            .where(Assessment.status == JobStatus.QUEUED, Assessment.id.not_in(list(exclude)))
            .order_by(Assessment.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Assessment)  # not the joined model_version row
        ).all()
        claimed = []
        for assessment in candidates:
            attempt = self.claim(assessment, now=now, stale_before=None)
            if attempt is not None:
                claimed.append((assessment, attempt))
        return claimed

    def transition(self, assessment_id: str, target: JobStatus, *, attempt: int | None = None, **values) -> bool:
        """Set `target` (and `values`) only if core.status allows it from the stored
        status and, when `attempt` is given, the job is still that attempt's.
        Returns False, changing nothing, otherwise."""
        conditions = [Assessment.id == assessment_id, Assessment.status.in_(sources_of(target))]
        if attempt is not None:
            conditions.append(Assessment.attempts == attempt)
        return self._update(and_(*conditions), status=target, **values)

    def needing_recovery(self, *, resend_before: datetime, stale_before: datetime) -> list[Assessment]:
        """Jobs no worker is on: queued, or running in an attempt that started before
        `stale_before`, whose message was last sent before `resend_before`."""
        last_sent = func.coalesce(Assessment.enqueued_at, Assessment.created_at)
        query = select(Assessment).where(
            last_sent < resend_before,
            or_(
                Assessment.status == JobStatus.QUEUED,
                and_(Assessment.status == JobStatus.RUNNING, Assessment.started_at < stale_before),
            ),
        ).order_by(Assessment.created_at)
        return list(self.session.scalars(query))

    def images_to_delete(self, *, finished_before: datetime) -> list[Assessment]:
        """Finished jobs older than the retention period whose images are still stored."""
        query = select(Assessment).where(
            Assessment.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED]),
            Assessment.finished_at < finished_before,
            Assessment.images_deleted_at.is_(None),
        )
        return list(self.session.scalars(query))

    def image_still_needed(self, image_path: str, *, finished_before: datetime) -> bool:
        """Uploads are stored once per content: another job within the retention period
        (or not finished) may still use the same file."""
        query = select(func.count()).select_from(Assessment).where(
            Assessment.image_path == image_path,
            Assessment.images_deleted_at.is_(None),
            or_(Assessment.finished_at.is_(None), Assessment.finished_at >= finished_before),
        )
        return (self.session.scalar(query) or 0) > 0

    def record_send(self, assessment: Assessment, *, now: datetime) -> bool:
        """Count one more send of the job's message; False if the job changed since read."""
        return self._update(
            and_(Assessment.id == assessment.id, Assessment.sends == assessment.sends,
                 Assessment.status == assessment.status, Assessment.attempts == assessment.attempts),
            sends=assessment.sends + 1,
            enqueued_at=now,
        )

    def _update(self, condition, **values) -> bool:
        result = self.session.execute(
            update(Assessment).where(condition).values(**values).execution_options(synchronize_session="fetch")
        )
        return result.rowcount == 1

    def recent(self, limit: int = 50, *, submitted_by: int | None = None) -> list[Assessment]:
        """Newest first; only those `submitted_by` that user id when given."""
        query = select(Assessment).order_by(Assessment.created_at.desc()).limit(limit)
        if submitted_by is not None:
            query = query.where(Assessment.submitted_by_id == submitted_by)
        return list(self.session.scalars(query))

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Assessment)) or 0

    def series(self, reference: str, sex: str, *, created_up_to: datetime,
               submitted_by: int | None = None) -> list[Assessment]:
        """A child's succeeded studies for the growth chart: the same pseudonymous reference
        and sex, created no later than `created_up_to`, oldest first; only those
        `submitted_by` that user id when given (a submitter sees only their own)."""
        query = select(Assessment).where(
            Assessment.reference == reference, Assessment.sex == sex,
            Assessment.status == JobStatus.SUCCEEDED, Assessment.created_at <= created_up_to,
        ).order_by(Assessment.created_at, Assessment.id)
        if submitted_by is not None:
            query = query.where(Assessment.submitted_by_id == submitted_by)
        return list(self.session.scalars(query))

class ModelVersionRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, model: ModelVersion) -> ModelVersion:
        self.session.add(model)
        self.session.flush()
        return model

    def get(self, model_id: int) -> ModelVersion | None:
        return self.session.get(ModelVersion, model_id)

    def get_by_name(self, name: str) -> ModelVersion | None:
        return self.session.scalars(select(ModelVersion).where(ModelVersion.name == name)).one_or_none()

    def active(self) -> ModelVersion | None:
        return self.session.scalars(
            select(ModelVersion).where(ModelVersion.is_active.is_(True))
        ).one_or_none()

    def all(self) -> list[ModelVersion]:
        return list(self.session.scalars(select(ModelVersion).order_by(ModelVersion.created_at)))

    def activate(self, model: ModelVersion, *, by: str | None = None, note: str | None = None,
                 action: str = "activate", forced: bool = False, comparison: dict | None = None) -> None:
        """Make `model` the one active model (others are deactivated first, in the
        same transaction, so the one-active unique index is never violated), and
        record the change in the activation history (nothing when it already serves)."""
        self.session.flush()
        previous = self.active()
        if previous is not None and previous.id == model.id:
            return
        self.session.add(ModelActivation(
            model_version_id=model.id, previous_model_version_id=previous.id if previous else None,
            action=action, activated_by=by, note=note, forced=forced, comparison=comparison))
        self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.is_active.is_(True), ModelVersion.id != model.id)
            .values(is_active=False)
            .execution_options(synchronize_session="fetch")
        )
        model.is_active = True
        self.session.flush()

