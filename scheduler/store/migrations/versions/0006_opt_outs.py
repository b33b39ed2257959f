"""Opt-outs: who opted out or back in, when and how (the unsubscribe page, one click, an
import).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "opt_outs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_opt_outs_customer", "opt_outs", ["customer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_opt_outs_customer", table_name="opt_outs")
    op.drop_table("opt_outs")
