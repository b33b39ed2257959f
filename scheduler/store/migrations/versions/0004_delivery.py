"""Delivery: retry times and headers on touches, each touch's history, unsubscribe tokens, and
shared state (sending paused).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("retry_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("headers", sa.Text(), nullable=True))
    op.create_table(
        "touch_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("touch_id", BIG_ID, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["touch_id"], ["touches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_touch_events_touch", "touch_events", ["touch_id", "id"])
    op.create_table(
        "unsubscribe_tokens",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
        sa.UniqueConstraint("token"),
    )
    op.create_table(
        "app_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_state")
    op.drop_table("unsubscribe_tokens")
    op.drop_index("ix_touch_events_touch", table_name="touch_events")
    op.drop_table("touch_events")
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("headers")
        batch.drop_column("retry_at")
