"""training jobs: datasets, training_jobs, training_epochs, model_activations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TRAINING_STATUSES = "('queued', 'running', 'cancelling', 'cancelled', 'succeeded', 'failed', 'crashed')"


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("registered_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.String(length=50), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("init_model_id", sa.Integer(), nullable=True),
        sa.Column("queued_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("out_dir", sa.Text(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"status IN {TRAINING_STATUSES}", name=op.f("ck_training_jobs_status_valid")),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_training_jobs_dataset_id_datasets")),
        sa.ForeignKeyConstraint(["init_model_id"], ["model_versions.id"],
                                name=op.f("fk_training_jobs_init_model_id_model_versions")),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_training_jobs_model_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    op.create_index("ix_training_jobs_created_at", "training_jobs", ["created_at"], unique=False)
    op.create_table(
        "training_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("val_mae", sa.Float(), nullable=True),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("images_per_second", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["training_jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_training_epochs_job_id_training_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_epochs")),
        sa.UniqueConstraint("job_id", "epoch", name="uq_training_epochs_job_epoch"),
    )
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("previous_model_version_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_model_activations_model_version_id_model_versions")),
        sa.ForeignKeyConstraint(["previous_model_version_id"], ["model_versions.id"],
                                name=op.f("fk_model_activations_previous_model_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
    )
    op.create_index("ix_model_activations_activated_at", "model_activations", ["activated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_model_activations_activated_at", table_name="model_activations")
    op.drop_table("model_activations")
    op.drop_table("training_epochs")
    op.drop_index("ix_training_jobs_created_at", table_name="training_jobs")
    op.drop_table("training_jobs")
    op.drop_table("datasets")
