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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.status import STATUS_VALUES, JobStatus
from core.training_status import TRAINING_STATUS_VALUES, TrainingStatus

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
        # The queue's queries (migration 0010; docs/scaling.md): claiming a batch and the
        # recovery sweep read only unfinished rows, retention only rows whose images are
        # kept, so they stay fast as finished studies pile up.
        Index("ix_assessments_unfinished", "created_at",
              postgresql_where=text("status IN ('queued', 'running')"),
              sqlite_where=text("status IN ('queued', 'running')")),
        Index("ix_assessments_images_kept", "finished_at",
              postgresql_where=text("images_deleted_at IS NULL"), sqlite_where=text("images_deleted_at IS NULL")),
        Index("ix_assessments_image_path", "image_path"),
        Index("ix_assessments_reference", "reference", "sex",
              postgresql_where=text("reference IS NOT NULL"), sqlite_where=text("reference IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    # Changed only through AssessmentRepository.claim/transition, which apply core.status.
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, create_constraint=False, length=16,
             values_callable=lambda statuses: [s.value for s in statuses]),
        default=JobStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # How often its message was sent to the queue, and when last: the recovery sweep
    # sends it again when no worker has started it (services/recovery.py).
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    # The upload, stored under the files directory by content hash.
    image_sha256: Mapped[str] = mapped_column(String(64))
    image_path: Mapped[str] = mapped_column(Text)  # relative to BONEAGE_FILES_DIR
    # Set when the retention policy deleted the upload and heatmap (the numbers stay).
    images_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Made once at submission (db/files.py): the normalised, downscaled 8-bit copy the
    # worker reads, and the display-size copy /image.png serves. Null for studies
    # submitted before they existed (the original is used then).
    working_image_path: Mapped[str | None] = mapped_column(Text)
    display_image_path: Mapped[str | None] = mapped_column(Text)

    # What the submitter told us.
    sex: Mapped[str] = mapped_column(String(1))
    chronological_age_months: Mapped[float | None] = mapped_column(Float)
    reference: Mapped[str | None] = mapped_column(String(64))  # pseudonymous only

    # Results.
    bone_age_months: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(16))
    heatmap_path: Mapped[str | None] = mapped_column(Text)  # relative to BONEAGE_FILES_DIR
    # The model's calibrated prediction interval (training/intervals.py); null when the
    # model has no calibration (checkpoints trained before it existed).
    bone_age_low_months: Mapped[float | None] = mapped_column(Float)
    bone_age_high_months: Mapped[float | None] = mapped_column(Float)
    interval_confidence: Mapped[float | None] = mapped_column(Float)
    # The model's out-of-distribution score for the image (null when it does not measure
    # one), and short notes shown with the result (e.g. that the film was rotated).
    ood_score: Mapped[float | None] = mapped_column(Float)
    result_notes: Mapped[list | None] = mapped_column(JSON)
    # The located hand as [left, top, right, bottom] shares of the heatmap's frame, and the share
    # of the heatmap's mass inside it (migration 0011); null when no hand was found.
    hand_box: Mapped[list | None] = mapped_column(JSON)
    heatmap_in_hand: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    queue_wait_seconds: Mapped[float | None] = mapped_column(Float)
    inference_seconds: Mapped[float | None] = mapped_column(Float)
    # Who submitted it (users.id): a submitter sees only their own studies (web.access).
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)

    model_version: Mapped[ModelVersion | None] = relationship(lazy="joined")

    def __init__(self, **values):
        # The defaults hold from construction, not only once the row is inserted.
        values.setdefault("id", uuid.uuid4().hex)
        values.setdefault("status", JobStatus.QUEUED)
        values.setdefault("attempts", 0)
        values.setdefault("sends", 0)
        values.setdefault("created_at", utcnow())
        super().__init__(**values)

    @property
    def finished(self) -> bool:
        return self.status.finished


# --------------------------------------------------------------- training (issue 7)


class Dataset(Base):
    """A registered training dataset: a folder in an RSNA layout under the data root."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    path: Mapped[str] = mapped_column(Text)  # relative to BONEAGE_DATA_DIR
    source: Mapped[str] = mapped_column(String(20), default="folder")  # "folder"; "readings" later
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    n_records: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # counts, age and sex mix
    registered_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __init__(self, **values):
        values.setdefault("created_at", utcnow())
        values.setdefault("source", "folder")
        values.setdefault("summary", {})
        super().__init__(**values)


class TrainingJob(Base):
    """One training run queued through the service (the only record of its state)."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {TRAINING_STATUS_VALUES!r}", name="status_valid"),
        Index("ix_training_jobs_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    # Changed only through TrainingJobRepository.claim/transition (core.training_status).
    status: Mapped[TrainingStatus] = mapped_column(
        Enum(TrainingStatus, native_enum=False, create_constraint=False, length=16,
             values_callable=lambda statuses: [s.value for s in statuses]),
        default=TrainingStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    recipe: Mapped[str] = mapped_column(String(50))
    # epochs, image_size, time_budget_s, init ("random" | "imagenet" | "model:<name>"), seed
    overrides: Mapped[dict] = mapped_column(JSON, default=dict)
    init_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    queued_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    total_epochs: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    out_dir: Mapped[str] = mapped_column(Text)  # relative to BONEAGE_FILES_DIR
    report: Mapped[dict | None] = mapped_column(JSON)  # evaluation metrics + comparison
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))

    dataset: Mapped[Dataset] = relationship(lazy="joined")
    model_version: Mapped[ModelVersion | None] = relationship(lazy="joined", foreign_keys=[model_version_id])
    init_model: Mapped[ModelVersion | None] = relationship(lazy="joined", foreign_keys=[init_model_id])

    def __init__(self, **values):
        values.setdefault("id", uuid.uuid4().hex)
        values.setdefault("status", TrainingStatus.QUEUED)
        values.setdefault("attempts", 0)
        values.setdefault("epoch", 0)
        values.setdefault("overrides", {})
        values.setdefault("created_at", utcnow())
        super().__init__(**values)


class TrainingEpoch(Base):
    """One epoch's metrics, written by the worker as the epoch ends."""

    __tablename__ = "training_epochs"
    __table_args__ = (UniqueConstraint("job_id", "epoch", name="uq_training_epochs_job_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_mae: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)  # cumulative training wall time
    images_per_second: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __init__(self, **values):
        values.setdefault("recorded_at", utcnow())
        super().__init__(**values)


class ModelActivation(Base):
    """Who made which model the serving one, when and why: the activation history."""

    __tablename__ = "model_activations"
    __table_args__ = (Index("ix_model_activations_activated_at", "activated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    previous_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(20))  # "activate" | "rollback"
    activated_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    comparison: Mapped[dict | None] = mapped_column(JSON)
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model_version: Mapped[ModelVersion] = relationship(lazy="joined", foreign_keys=[model_version_id])
    previous_model_version: Mapped[ModelVersion | None] = relationship(
        lazy="joined", foreign_keys=[previous_model_version_id])

    def __init__(self, **values):
        values.setdefault("activated_at", utcnow())
        values.setdefault("forced", False)
        values.setdefault("action", "activate")
        super().__init__(**values)


# The users table, which assessments.submitted_by_id refers to, is part of the same metadata.
from db import user_models  # noqa: E402,F401
