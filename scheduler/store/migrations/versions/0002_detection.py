"""Occasion detection: its watermarks, and indexes for birthdays, anniversaries and first meetings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_marks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("moment", UtcDateTime(), nullable=True),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "updated_at", UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    # Detection's daily dates, each index carrying what detection reads of the customer.
    op.drop_index("ix_customers_birth_month_day", table_name="customers")
    op.create_index(
        "ix_customers_birthday",
        "customers",
        ["birth_month", "birth_day", "birth_year", "timezone", "email", "opted_out_at"],
    )
    op.create_index(
        "ix_customers_customer_since",
        "customers",
        ["customer_since", "timezone", "email", "opted_out_at"],
    )
    op.create_index("ix_customers_first_met_on", "customers", ["first_met_on"])


def downgrade() -> None:
    op.drop_index("ix_customers_first_met_on", table_name="customers")
    op.drop_index("ix_customers_customer_since", table_name="customers")
    op.drop_index("ix_customers_birthday", table_name="customers")
    op.create_index("ix_customers_birth_month_day", "customers", ["birth_month", "birth_day"])
    op.drop_table("detection_marks")
