"""Cards and calls: each touch's channel (email, card, call) and when a card was printed; the
customers' phone and postal address.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CONTACT_COLUMNS = {
    "phone": 40,
    "address_line1": 120,
    "address_line2": 120,
    "city": 80,
    "postal_code": 20,
    "region": 80,
    "country": 80,
}


def upgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("channel", sa.String(8), nullable=False, server_default="email"))
        batch.add_column(sa.Column("printed_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("customers") as batch:
        for name, length in CONTACT_COLUMNS.items():
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for name in reversed(CONTACT_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("printed_at")
        batch.drop_column("channel")
