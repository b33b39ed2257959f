"""How many notes have each status, kept by triggers on SQLite (see
`scheduler.store.models.TouchTally`); the table stays empty on PostgreSQL.

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

ADD_NEW = """INSERT INTO touch_tallies (status, notes) VALUES (NEW.status, 1)
    ON CONFLICT (status) DO UPDATE SET notes = notes + 1;"""
TAKE_OLD = "UPDATE touch_tallies SET notes = notes - 1 WHERE status = OLD.status;"
TRIGGERS = {
    "touch_tallies_insert": f"AFTER INSERT ON touches BEGIN {ADD_NEW} END",
    "touch_tallies_delete": f"AFTER DELETE ON touches BEGIN {TAKE_OLD} END",
    "touch_tallies_update": (
        "AFTER UPDATE OF status ON touches WHEN OLD.status IS NOT NEW.status "
        f"BEGIN {TAKE_OLD} {ADD_NEW} END"
    ),
}


def upgrade() -> None:
    op.create_table(
        "touch_tallies",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status"),
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "INSERT INTO touch_tallies (status, notes) "
        "SELECT status, count(*) FROM touches GROUP BY status"
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("touch_tallies")
