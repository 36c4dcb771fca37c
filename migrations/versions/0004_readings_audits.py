"""readings and audit runs (issue 8)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.String(length=32), nullable=False),
        sa.Column("bone_age_months", sa.Float(), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.CheckConstraint("method IN ('GP', 'TW3', 'other')", name=op.f("ck_readings_method_valid")),
        sa.CheckConstraint("bone_age_months >= 0 AND bone_age_months <= 240", name=op.f("ck_readings_bone_age_range")),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"], ondelete="CASCADE",
                                name=op.f("fk_readings_assessment_id_assessments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint("assessment_id", "reader", name="uq_readings_assessment_reader"),
    )
    op.create_index("ix_readings_assessment_id", "readings", ["assessment_id"], unique=False)
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("unique_key", sa.String(length=120), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version_ids", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.CheckConstraint("trigger IN ('schedule', 'page', 'cli', 'api', 'demo')", name=op.f("ck_audit_runs_trigger_valid")),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f("ck_audit_runs_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_runs")),
        sa.UniqueConstraint("unique_key", name=op.f("uq_audit_runs_unique_key")),
    )
    op.create_index("ix_audit_runs_window_end", "audit_runs", ["window_end"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_runs_window_end", table_name="audit_runs")
    op.drop_table("audit_runs")
    op.drop_index("ix_readings_assessment_id", table_name="readings")
    op.drop_table("readings")
