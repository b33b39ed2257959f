"""The queue by status: how many notes have each status (only statuses some note has).

On SQLite the numbers come from `touch_tallies`, which triggers keep in step with `touches`
(see `scheduler.store.models.TouchTally`), so reading them costs the same with a million notes
as with ten; on PostgreSQL the notes are counted.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from scheduler.store.models import metadata

touches = metadata.tables["touches"]
touch_tallies = metadata.tables["touch_tallies"]


def status_counts(connection: Connection) -> dict[str, int]:
    """Each status some note has, with its number of notes, by status name."""
    if connection.dialect.name == "sqlite":
        query = select(touch_tallies.c.status, touch_tallies.c.notes).where(
            touch_tallies.c.notes > 0
        )
    else:
        query = select(touches.c.status, func.count()).group_by(touches.c.status)
    return dict(sorted((status, count) for status, count in connection.execute(query)))
