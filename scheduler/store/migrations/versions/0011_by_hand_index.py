"""The notes waiting for the owner's own hand (cards to print, calls to make) counted from a small
partial index, so `status` and the console's Today page do not read every waiting email.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NOT_EMAIL = sa.text("channel <> 'email'")


def upgrade() -> None:
    op.create_index(
        "ix_touches_by_hand",
        "touches",
        ["channel", "status"],
        sqlite_where=NOT_EMAIL,
        postgresql_where=NOT_EMAIL,
    )


def downgrade() -> None:
    op.drop_index("ix_touches_by_hand", table_name="touches")
