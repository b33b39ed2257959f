"""The queue by status: how many notes have each status (only statuses some note has), exact.

On SQLite, most notes end `sent`, so `sent` is every note less the others: SQLite counts a
table's rows from its pages alone (`SELECT count(*)` reads no row); each other status of the
vocabulary is counted in its own range of the index led by status (a tight loop, about twice as
fast as grouping), and a status outside the vocabulary (written by something else) is still
counted, by the ranges between the vocabulary's words (empty, so cheap). A store of a million
notes costs the notes still queued or that went another way, not a million. One statement, so
one snapshot.

PostgreSQL counts a table by reading it, so there one pass grouping every note by status is
the cheaper.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    literal,
    null,
    select,
    union_all,
)

from scheduler.store.models import metadata
from scheduler.vocabulary import STATUSES

touches = metadata.tables["touches"]
SENT = "sent"


def status_counts(connection: Connection) -> dict[str, int]:
    """Each status some note has, with its number of notes, by status name."""
    if connection.dialect.name != "sqlite":
        grouped = select(touches.c.status, func.count()).group_by(touches.c.status)
        return dict(sorted((status, count) for status, count in connection.execute(grouped)))
    rows: list[tuple[str | None, int]] = [
        (status, count) for status, count in connection.execute(union_all(*_parts()))
    ]
    counts = {status: count for status, count in rows if status is not None}
    every = next(count for status, count in rows if status is None)
    counts[SENT] = every - sum(counts.values())
    return {status: count for status, count in sorted(counts.items()) if count}


def _parts() -> list[Select[Any, Any]]:
    """The statement's parts: each status but sent, the ranges between the vocabulary's
    words, and every note (with no status)."""
    status = touches.c.status
    parts: list[Select[Any, Any]] = [
        select(literal(name), _count(status == name)) for name in STATUSES if name != SENT
    ]
    words = sorted(STATUSES)
    for below, above in zip([None, *words], [*words, None], strict=True):
        between: list[ColumnElement[bool]] = []
        if below is not None:
            between.append(status > below)
        if above is not None:
            between.append(status < above)
        parts.append(select(status, func.count()).where(and_(*between)).group_by(status))
    parts.append(select(null(), select(func.count()).select_from(touches).scalar_subquery()))
    return parts


def _count(which: ColumnElement[bool]) -> ColumnElement[int]:
    return select(func.count()).select_from(touches).where(which).scalar_subquery()
