"""assessments: the stored working and display copies of the upload, and what the
image checks in the model found (an out-of-distribution score, notes shown with the result)

working_image_path: the normalised, downscaled 8-bit copy made once at submission, which
the worker reads instead of decoding the original again. display_image_path: the
display-size copy that /image.png serves. ood_score: how far the image's features lie from
the training set's (null when the model does not measure it). result_notes: a list of short
strings shown with the result (for example that the film was rotated).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("working_image_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("display_image_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ood_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("result_notes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("result_notes")
        batch.drop_column("ood_score")
        batch.drop_column("display_image_path")
        batch.drop_column("working_image_path")
