"""Repositories: the only place that builds queries against the tables."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import Assessment, ModelVersion, Status


class AssessmentRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, assessment: Assessment) -> Assessment:
        self.session.add(assessment)
        self.session.flush()
        return assessment

    def get(self, assessment_id: str) -> Assessment | None:
        return self.session.get(Assessment, assessment_id)

    def get_for_update(self, assessment_id: str) -> Assessment | None:
        """The row, locked until commit where the database can lock rows (PostgreSQL)."""
        return self.session.scalars(
            select(Assessment).where(Assessment.id == assessment_id).with_for_update(of=Assessment)
        ).one_or_none()

    def recent(self, limit: int = 50) -> list[Assessment]:
        query = select(Assessment).order_by(Assessment.created_at.desc()).limit(limit)
        return list(self.session.scalars(query))

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Assessment)) or 0

    def summary_by_sex(self) -> list[dict]:
        """Succeeded assessments per sex: count, mean bone age and, where the
        chronological age is known, the mean of (bone age - chronological age)."""
        difference = Assessment.bone_age_months - Assessment.chronological_age_months
        query = (
            select(
                Assessment.sex,
                func.count(),
                func.avg(Assessment.bone_age_months),
                func.count(Assessment.chronological_age_months),
                func.avg(difference),
            )
            .where(Assessment.status == Status.SUCCEEDED.value)
            .group_by(Assessment.sex)
            .order_by(Assessment.sex)
        )
        return [
            {
                "sex": sex,
                "count": count,
                "mean_bone_age_months": _round(mean),
                "with_chronological_age": with_age,
                "mean_bone_minus_chronological_months": _round(mean_difference),
            }
            for sex, count, mean, with_age, mean_difference in self.session.execute(query)
        ]


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

    def activate(self, model: ModelVersion) -> None:
        """Make `model` the one active model (others are deactivated first, in the
        same transaction, so the one-active unique index is never violated)."""
        self.session.flush()
        self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.is_active.is_(True), ModelVersion.id != model.id)
            .values(is_active=False)
            .execution_options(synchronize_session="fetch")
        )
        model.is_active = True
        self.session.flush()


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)
