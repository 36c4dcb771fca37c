"""The tables: an Assessment is one submitted study (the job); a ModelVersion is a
registered checkpoint. Alembic (migrations/) owns the schema; these classes describe it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Enum,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.status import STATUS_VALUES, JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # Exactly one active model: at most one row may have is_active true.
        Index(
            "uq_model_versions_one_active",
            "is_active",
            unique=True,
            postgresql_where=text("is_active"),
            sqlite_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # e.g. "demo-3f2a9c1b"
    recipe: Mapped[str] = mapped_column(String(50))
    checkpoint_path: Mapped[str] = mapped_column(Text)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    trained_on: Mapped[str] = mapped_column(String(50))  # "synthetic", "rsna", ...
    label: Mapped[str | None] = mapped_column(Text)  # e.g. "synthetic demo model, not for clinical use"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)

    def __init__(self, **values):
        values.setdefault("created_at", utcnow())
        values.setdefault("is_active", False)
        values.setdefault("metrics", {})
        super().__init__(**values)

    @property
    def synthetic(self) -> bool:
        return self.trained_on == "synthetic"


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUS_VALUES!r}", name="status_valid"),
        CheckConstraint("sex IN ('M', 'F')", name="sex_valid"),
        Index("ix_assessments_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    # Changed only through AssessmentRepository.claim/transition, which apply core.status.
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, create_constraint=False, length=16,
             values_callable=lambda statuses: [s.value for s in statuses]),
        default=JobStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    # The upload, stored under the files directory by content hash.
    image_sha256: Mapped[str] = mapped_column(String(64))
    image_path: Mapped[str] = mapped_column(Text)  # relative to BONEAGE_FILES_DIR

    # What the submitter told us.
    sex: Mapped[str] = mapped_column(String(1))
    chronological_age_months: Mapped[float | None] = mapped_column(Float)
    reference: Mapped[str | None] = mapped_column(String(64))  # pseudonymous only

    # Results.
    bone_age_months: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(16))
    heatmap_path: Mapped[str | None] = mapped_column(Text)  # relative to BONEAGE_FILES_DIR
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    queue_wait_seconds: Mapped[float | None] = mapped_column(Float)
    inference_seconds: Mapped[float | None] = mapped_column(Float)

    model_version: Mapped[ModelVersion | None] = relationship(lazy="joined")

    def __init__(self, **values):
        # The defaults hold from construction, not only once the row is inserted.
        values.setdefault("id", uuid.uuid4().hex)
        values.setdefault("status", JobStatus.QUEUED)
        values.setdefault("attempts", 0)
        values.setdefault("created_at", utcnow())
        super().__init__(**values)

    @property
    def finished(self) -> bool:
        return self.status.finished
