"""assessments.bone_age_low_months, bone_age_high_months, interval_confidence: the
calibrated prediction interval stored with every result (issue 11)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("bone_age_low_months", sa.Float(), nullable=True))
        batch.add_column(sa.Column("bone_age_high_months", sa.Float(), nullable=True))
        batch.add_column(sa.Column("interval_confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("interval_confidence")
        batch.drop_column("bone_age_high_months")
        batch.drop_column("bone_age_low_months")
