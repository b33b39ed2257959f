"""What comes back: inbound messages (bounces, complaints, replies), addresses that bounced for
good, when a note was answered, and an index to find a note by its Message-ID.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seen_as", sa.String(length=16), nullable=False),
        sa.Column("touch_id", BIG_ID, nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("keep_raw_until", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["touch_id"], ["touches.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_inbound_messages_kind", "inbound_messages", ["kind", "id"])
    op.create_index(
        "ix_inbound_messages_customer", "inbound_messages", ["customer_id", "received_at"]
    )
    op.create_index("ix_inbound_messages_touch", "inbound_messages", ["touch_id"])
    op.create_table(
        "undeliverable_addresses",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("replied_at", UtcDateTime(), nullable=True))
    op.create_index("ix_touches_message_id", "touches", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_touches_message_id", table_name="touches")
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("replied_at")
    op.drop_table("undeliverable_addresses")
    op.drop_index("ix_inbound_messages_touch", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_customer", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_kind", table_name="inbound_messages")
    op.drop_table("inbound_messages")
