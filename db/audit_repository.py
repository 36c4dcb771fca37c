"""Repositories for the audit tables (db.audit_models) and the audit's queries over
assessments. The unit of work exposes them as `readings` and `audits`."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.audit_models import SYNTHETIC_REFERENCE_PREFIX, AuditRun, Reading
from db.models import Assessment


class ReadingRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, reading: Reading) -> Reading:
        self.session.add(reading)
        self.session.flush()
        return reading

    def for_assessment(self, assessment_id: str) -> list[Reading]:
        query = select(Reading).where(Reading.assessment_id == assessment_id).order_by(Reading.read_at, Reading.id)
        return list(self.session.scalars(query))

    def for_assessments(self, assessment_ids) -> dict[str, list[Reading]]:
        found: dict[str, list[Reading]] = defaultdict(list)
        ids = list(assessment_ids)
        for chunk in range(0, len(ids), 500):
            query = select(Reading).where(Reading.assessment_id.in_(ids[chunk:chunk + 500])).order_by(Reading.id)
            for reading in self.session.scalars(query):
                found[reading.assessment_id].append(reading)
        return dict(found)

    def readers_of(self, assessment_id: str) -> set[str]:
        query = select(Reading.reader).where(Reading.assessment_id == assessment_id)
        return set(self.session.scalars(query))

    def assessment_ids_by_reference(self, reference: str) -> list[str]:
        return list(self.session.scalars(select(Assessment.id).where(Assessment.reference == reference).limit(5)))

    def with_assessments(self) -> list[tuple[Assessment, list[Reading]]]:
        """Succeeded-or-not assessments that have at least one reading, oldest first."""
        query = select(Reading).order_by(Reading.assessment_id, Reading.id)
        grouped: dict[str, list[Reading]] = defaultdict(list)
        for reading in self.session.scalars(query):
            grouped[reading.assessment_id].append(reading)
        assessments = self.session.scalars(select(Assessment).where(Assessment.id.in_(list(grouped)))) if grouped else []
        return sorted(((a, grouped[a.id]) for a in assessments), key=lambda pair: pair[0].created_at)


class AuditRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, run: AuditRun) -> AuditRun:
        self.session.add(run)
        self.session.flush()
        return run

    def get(self, run_id: str) -> AuditRun | None:
        return self.session.get(AuditRun, run_id)

    def get_by_key(self, key: str) -> AuditRun | None:
        return self.session.scalars(select(AuditRun).where(AuditRun.unique_key == key)).one_or_none()

    def recent(self, limit: int = 50) -> list[AuditRun]:
        query = select(AuditRun).order_by(AuditRun.window_end.desc(), AuditRun.created_at.desc()).limit(limit)
        return list(self.session.scalars(query))

    def latest(self) -> AuditRun | None:
        query = (select(AuditRun).where(AuditRun.status == "succeeded")
                 .order_by(AuditRun.window_end.desc(), AuditRun.created_at.desc()).limit(1))
        return self.session.scalars(query).first()

    def succeeded_in_order(self, limit: int = 200) -> list[AuditRun]:
        """Succeeded runs by window, oldest first (for trends)."""
        query = (select(AuditRun).where(AuditRun.status == "succeeded")
                 .order_by(AuditRun.window_end.desc(), AuditRun.created_at.desc()).limit(limit))
        return list(reversed(list(self.session.scalars(query))))

    def assessments_between(self, start: datetime, end: datetime) -> list[Assessment]:
        """Assessments created in [start, end), oldest first."""
        query = (select(Assessment).where(Assessment.created_at >= start, Assessment.created_at < end)
                 .order_by(Assessment.created_at))
        return list(self.session.scalars(query))

    def delete_synthetic(self) -> dict[str, object]:
        """Remove everything the demonstration history made; returns counts and the
        files of the removed assessments (for the caller to delete)."""
        synthetic = list(self.session.scalars(
            select(Assessment).where(Assessment.reference.like(f"{SYNTHETIC_REFERENCE_PREFIX}%"))))
        ids = [a.id for a in synthetic]
        files = [p for a in synthetic for p in (a.image_path, a.heatmap_path) if p]
        readings = self.session.execute(delete(Reading).where(
            (Reading.synthetic.is_(True)) | (Reading.assessment_id.in_(ids)))).rowcount
        runs = self.session.execute(delete(AuditRun).where(AuditRun.synthetic.is_(True))).rowcount
        for chunk in range(0, len(ids), 500):
            self.session.execute(delete(Assessment).where(Assessment.id.in_(ids[chunk:chunk + 500])))
        return {"assessments": len(ids), "readings": readings, "audit_runs": runs, "files": files}

    def count_synthetic_assessments(self) -> int:
        from sqlalchemy import func

        return self.session.scalar(select(func.count()).select_from(Assessment).where(
            Assessment.reference.like(f"{SYNTHETIC_REFERENCE_PREFIX}%"))) or 0
