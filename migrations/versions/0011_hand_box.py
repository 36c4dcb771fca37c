"""assessments: where the hand was found, and how much of the heatmap fell on it (issue 12)

hand_box: the located hand's box (core/hand.py) as [left, top, right, bottom] shares of the
model's input square, the frame of the heatmap overlay, which the result page draws on it.
heatmap_in_hand: the share of the Grad-CAM heatmap's mass inside that box (a check that the
estimate came from the hand; chance level is the box's area). Both null when no hand was found
and for studies assessed before this revision.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("hand_box", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("heatmap_in_hand", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("heatmap_in_hand")
        batch.drop_column("hand_box")
