"""Detection's watermarks: how far it has got, moved forward only.

One row per name: `run` (the moment of the last run), `orders`, `referrals`, `meetings`,
`reviews` (the highest row id seen) and `check_ins` (the moment of the last check-in pass).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.store.models import metadata

marks = metadata.tables["detection_marks"]
Marks = dict[str, tuple[datetime | None, int | None]]


def read_marks(connection: Connection) -> dict[str, tuple[datetime | None, int | None]]:
    return {
        row.name: (row.moment, row.last_id)
        for row in connection.execute(select(marks.c.name, marks.c.moment, marks.c.last_id))
    }


def write_marks(
    connection: Connection, new: dict[str, tuple[datetime | None, int | None]], now: datetime
) -> None:
    """Move the watermarks forward (never back: another instance may have gone further)."""
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    for name, (moment, last_id) in new.items():
        statement = dialect.insert(marks).values(
            name=name, moment=moment, last_id=last_id, updated_at=now
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "moment": func.coalesce(
                    _greatest(connection, marks.c.moment, excluded.moment), excluded.moment
                ),
                "last_id": func.coalesce(
                    _greatest(connection, marks.c.last_id, excluded.last_id), excluded.last_id
                ),
                "updated_at": excluded.updated_at,
            },
        )
        connection.execute(statement)


def _greatest(connection: Connection, *values: Any) -> Any:
    """The larger value (NULL when either is NULL); SQLite's max() of several is GREATEST."""
    if connection.dialect.name == "sqlite":
        return func.max(*values)
    return func.greatest(*values)
