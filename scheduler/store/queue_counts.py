"""The queue by status: how many notes have each status (only statuses some note has), exact.

Most notes end `sent`, so `sent` is every note less the others. SQLite counts a table's rows
from its pages alone (`SELECT count(*)` reads no row), and the other statuses from their entries
in an index led by status (the two ranges either side of `sent`): a store of a million notes
costs the notes still queued or that went another way, not a million. One statement, so one
snapshot on both databases (PostgreSQL takes a new snapshot for each statement).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, Select, func, null, select, union_all

from scheduler.store.models import metadata

touches = metadata.tables["touches"]
SENT = "sent"


def status_counts(connection: Connection) -> dict[str, int]:
    """Each status some note has, with its number of notes, by status name."""
    total = select(func.count()).select_from(touches).scalar_subquery()
    rows = connection.execute(
        union_all(
            _by_status(touches.c.status < SENT),
            _by_status(touches.c.status > SENT),
            select(null(), total),
        )
    ).all()
    counts = {status: count for status, count in rows if status is not None}
    every = next(count for status, count in rows if status is None)
    counts[SENT] = every - sum(counts.values())
    return {status: count for status, count in sorted(counts.items()) if count}


def _by_status(which: ColumnElement[bool]) -> Select[tuple[str, int]]:
    return select(touches.c.status, func.count()).where(which).group_by(touches.c.status)
