"""The sent-log's filters and the console's charts answered from indexes: one status in a span of
due dates, one status, a span of due dates, each in order of latest activity, and the latest
activity with each note's status and kind.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LATEST_FIRST = [sa.text("updated_at DESC"), sa.text("id DESC")]


def upgrade() -> None:
    op.drop_index("ix_touches_status_due_at", table_name="touches")
    op.create_index(
        "ix_touches_status_due_at", "touches", ["status", "due_at", *LATEST_FIRST, "kind"]
    )
    op.create_index("ix_touches_status_updated_at", "touches", ["status", "updated_at", "id"])
    op.create_index("ix_touches_due_at", "touches", ["due_at", *LATEST_FIRST, "kind"])
    op.drop_index("ix_touches_updated_at", table_name="touches")
    op.create_index("ix_touches_updated_at", "touches", ["updated_at", "id", "status", "kind"])


def downgrade() -> None:
    op.drop_index("ix_touches_updated_at", table_name="touches")
    op.create_index("ix_touches_updated_at", "touches", ["updated_at", "id"])
    op.drop_index("ix_touches_due_at", table_name="touches")
    op.drop_index("ix_touches_status_updated_at", table_name="touches")
    op.drop_index("ix_touches_status_due_at", table_name="touches")
    op.create_index("ix_touches_status_due_at", "touches", ["status", "due_at"])
