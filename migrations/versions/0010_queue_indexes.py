"""assessments: indexes for the queue's queries, so they stay fast as finished studies
pile up (docs/scaling.md; benchmarks/bench_queue_queries.py measures them)

- ix_assessments_unfinished (created_at) WHERE status IN ('queued', 'running'): claiming a
  batch (oldest queued first) and the recovery sweep;
- ix_assessments_images_kept (finished_at) WHERE images_deleted_at IS NULL: retention;
- ix_assessments_image_path (image_path): retention's "is this upload still needed";
- ix_assessments_reference (reference, sex) WHERE reference IS NOT NULL: a child's series
  (growth chart, audits by reference).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNFINISHED = sa.text("status IN ('queued', 'running')")
IMAGES_KEPT = sa.text("images_deleted_at IS NULL")
WITH_REFERENCE = sa.text("reference IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_assessments_unfinished", "assessments", ["created_at"],
                    postgresql_where=UNFINISHED, sqlite_where=UNFINISHED)
    op.create_index("ix_assessments_images_kept", "assessments", ["finished_at"],
                    postgresql_where=IMAGES_KEPT, sqlite_where=IMAGES_KEPT)
    op.create_index("ix_assessments_image_path", "assessments", ["image_path"])
    op.create_index("ix_assessments_reference", "assessments", ["reference", "sex"],
                    postgresql_where=WITH_REFERENCE, sqlite_where=WITH_REFERENCE)


def downgrade() -> None:
    for name in ("ix_assessments_reference", "ix_assessments_image_path", "ix_assessments_images_kept",
                 "ix_assessments_unfinished"):
        op.drop_index(name, table_name="assessments")
