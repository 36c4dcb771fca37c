"""The tables: an Assessment is one submitted study (the job); a ModelVersion is a
registered checkpoint. Alembic (migrations/) owns the schema; these classes describe it.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
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


class Status(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED)


STATUS_VALUES = tuple(s.value for s in Status)


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

    @property
    def synthetic(self) -> bool:
        return self.trained_on == "synthetic"


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="status_valid"
        ),
        CheckConstraint("sex IN ('M', 'F')", name="sex_valid"),
        Index("ix_assessments_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED.value)
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

    @property
    def status_enum(self) -> Status:
        return Status(self.status)

    @property
    def finished(self) -> bool:
        return self.status_enum.finished

    def mark_running(self) -> None:
        now = utcnow()
        self.status = Status.RUNNING.value
        self.started_at = now
        self.error = None
        self.queue_wait_seconds = max(0.0, (now - self.created_at).total_seconds())

    def mark_succeeded(
        self,
        *,
        bone_age_months: float,
        stage: str,
        heatmap_path: str | None,
        model_version: ModelVersion,
        inference_seconds: float,
    ) -> None:
        self.status = Status.SUCCEEDED.value
        self.finished_at = utcnow()
        self.bone_age_months = float(bone_age_months)
        self.stage = stage
        self.heatmap_path = heatmap_path
        self.model_version = model_version
        self.inference_seconds = float(inference_seconds)
        self.error = None

    def mark_failed(self, reason: str) -> None:
        self.status = Status.FAILED.value
        self.finished_at = utcnow()
        self.error = reason
