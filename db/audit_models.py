"""Tables for the audit (issue 8): readings (a reader's bone age for an assessment,
the ground truth) and audit runs (a stored audit of one window).

Same declarative Base as db.models; db.session imports this module, so the tables are
part of the metadata wherever a unit of work (or Alembic's env) is used.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.audit_rules import READING_METHODS, TRIGGERS
from db.models import Base, UTCDateTime, utcnow

# Assessments that the demonstration history creates carry this reference prefix.
SYNTHETIC_REFERENCE_PREFIX = "SYNTHETIC-DEMO-"
AUDIT_STATUSES = ("running", "succeeded", "failed")


class Reading(Base):
    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("assessment_id", "reader", name="uq_readings_assessment_reader"),
        CheckConstraint(f"method IN {READING_METHODS!r}", name="method_valid"),
        CheckConstraint("bone_age_months >= 0 AND bone_age_months <= 240", name="bone_age_range"),
        Index("ix_readings_assessment_id", "assessment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[str] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    bone_age_months: Mapped[float] = mapped_column(Float)
    reader: Mapped[str] = mapped_column(String(64))  # pseudonymous reader id
    method: Mapped[str] = mapped_column(String(8))  # GP, TW3, other
    read_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)

    def __init__(self, **values):
        values.setdefault("created_at", utcnow())
        values.setdefault("read_at", values["created_at"])
        values.setdefault("method", "GP")
        values.setdefault("synthetic", False)
        super().__init__(**values)


class AuditRun(Base):
    __tablename__ = "audit_runs"
    __table_args__ = (
        CheckConstraint(f"trigger IN {TRIGGERS!r}", name="trigger_valid"),
        CheckConstraint(f"status IN {AUDIT_STATUSES!r}", name="status_valid"),
        Index("ix_audit_runs_window_end", "window_end"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex)
    # One run per window and kind for scheduled runs ("schedule:<from>:<to>"); a run
    # asked for by a person gets a key of its own.
    unique_key: Mapped[str] = mapped_column(String(120), unique=True)
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="running")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())  # exclusive
    model_version_ids: Mapped[list] = mapped_column(JSON, default=list)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    results: Mapped[dict] = mapped_column(JSON, default=dict)
    findings: Mapped[list] = mapped_column(JSON, default=list)
    finding_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)

    def __init__(self, **values):
        values.setdefault("id", uuid.uuid4().hex)
        values.setdefault("unique_key", f"{values.get('trigger')}:{values['id']}")
        values.setdefault("status", "running")
        values.setdefault("created_at", utcnow())
        values.setdefault("model_version_ids", [])
        values.setdefault("parameters", {})
        values.setdefault("results", {})
        values.setdefault("findings", [])
        values.setdefault("finding_count", 0)
        values.setdefault("synthetic", False)
        super().__init__(**values)
