"""The daily budget's plan (the moment a note the budget moved to a later day may go), and the
sent-log in order of latest activity.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("planned_at", UtcDateTime(), nullable=True))
    op.create_index("ix_touches_updated_at", "touches", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_touches_updated_at", table_name="touches")
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("planned_at")
