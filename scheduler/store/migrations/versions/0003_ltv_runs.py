"""Lifetime values: each computation's model and parameters once, in ltv_runs.

customer_values held the model and its parameters on every row; they now live once per
computation in ltv_runs, and each score points to its run. The scores are derived data (a
refresh computes them all again), so the table is recreated empty.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import Money, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ltv_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("spend_params", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("log_likelihood", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.drop_index("ix_customer_values_total", table_name="customer_values")
    op.drop_table("customer_values")
    _create_customer_values(
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["ltv_runs.id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_index("ix_customer_values_total", table_name="customer_values")
    op.drop_table("customer_values")
    _create_customer_values(
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
    )
    op.drop_table("ltv_runs")


def _create_customer_values(*extra: sa.Column[object] | sa.ForeignKeyConstraint) -> None:
    op.create_table(
        "customer_values",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("historical", Money(), nullable=False),
        sa.Column("predicted", Money(), nullable=False),
        sa.Column("referral", Money(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=False),
        *extra,
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_index("ix_customer_values_total", "customer_values", ["total"], unique=False)
