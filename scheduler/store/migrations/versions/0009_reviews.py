"""Reviews: the reviews and testimonials customers wrote, thanked by `review_thanks`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", UtcDateTime(), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column(
            "created_at", UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
        sa.CheckConstraint("text IS NULL OR length(text) <= 5000", name="ck_reviews_text_length"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_index("ix_reviews_customer_reviewed_at", "reviews", ["customer_id", "reviewed_at"])


def downgrade() -> None:
    op.drop_index("ix_reviews_customer_reviewed_at", table_name="reviews")
    op.drop_table("reviews")
