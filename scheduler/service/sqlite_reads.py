"""The quick way `appreciate log` and `appreciate status` read a SQLite store: the same answers
as `scheduler.delivery.sent_log.log_rows` and `scheduler.service.queue_status.queue_status`,
through the standard library's sqlite3, so these two commands start without loading SQLAlchemy,
the models or pydantic (a third of a second of every start). tests/test_sqlite_reads.py holds
both ways to the same answers on the same stores.

Rules:
- Read-only (`mode=ro`), waiting for a writer's lock as long as the store does (10 s). A file
  that is missing or cannot be opened, or whose schema is not exactly this version's
  (`SCHEMA_HEAD`), is not read here: `open_quick` answers None and the caller goes the full
  way, which says what is wrong (and offers `appreciate db upgrade`).
- Times compare as SQLite keeps them (`2027-03-01 09:00:00.000000`, UTC text) and are read
  back as aware UTC datetimes.
- Imports nothing that loads SQLAlchemy (a test runs the commands and checks).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from scheduler.delivery.log_filter import LOG_COLUMNS, LogFilter
from scheduler.delivery.throttle import PAUSED, THROTTLED, Throttle, throttle_from_json
from scheduler.notes.template_failures import (
    RECENT,
    TEMPLATE_FAILURE,
    TemplateFailures,
    most_first,
)
from scheduler.service.queue_report import (
    LAST_CYCLE,
    QueueStatus,
    cycle_from_json,
    waiting_by_channel,
)
from scheduler.store.schema_head import SCHEMA_HEAD
from scheduler.store.utc_text import aware_utc, aware_utc_or_none, sqlite_utc_text
from scheduler.vocabulary import STATUSES, WAITING

BUSY_TIMEOUT = 10.0
"""Seconds a read waits for a writer's lock (as `scheduler.store.db.BUSY_TIMEOUT`)."""
TIMES = frozenset({"due_at", "sent_at", "replied_at", "updated_at"})
"""The sent-log's columns that hold a moment."""
SENT = "sent"


@contextmanager
def open_quick(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the store at `path`, or None (see the module's rules)."""
    connection = _connect(path)
    if connection is None:
        yield None
        return
    with closing(connection):
        yield connection


def _connect(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT
        )
    except (sqlite3.Error, ValueError):
        return None
    try:
        found = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        found = []
    if found != [(SCHEMA_HEAD,)]:
        connection.close()
        return None
    return connection


# The sent-log ---------------------------------------------------------------------------------

_LOG_COLUMNS_SQL = ", ".join(
    ["touches.id", "customers.external_id", *(f"touches.{c}" for c in LOG_COLUMNS[2:])]
)
_LOG_SELECT = f"SELECT {_LOG_COLUMNS_SQL} FROM touches JOIN customers"  # noqa: S608 - names only
_LOG_SELECT += " ON customers.id = touches.customer_id"
_LATEST_FIRST = " ORDER BY touches.updated_at DESC, touches.id DESC"


def log_rows(connection: sqlite3.Connection, wanted: LogFilter) -> list[dict[str, Any]]:
    """The notes matching `wanted`, latest activity first, at most `limit` (0: all): as
    `scheduler.delivery.sent_log.log_rows`."""
    conditions, parameters = _conditions(wanted)
    where = " AND ".join(conditions) or "1"
    if wanted.limit:
        page = f"SELECT touches.id FROM touches WHERE {where}"  # noqa: S608 - values bound
        page += f"{_LATEST_FIRST} LIMIT ?"
        where, parameters = f"touches.id IN ({page})", [*parameters, wanted.limit]
    query = f"{_LOG_SELECT} WHERE {where}{_LATEST_FIRST}"
    found = connection.execute(query, parameters)
    return [_log_row(row) for row in found]


def _conditions(wanted: LogFilter) -> tuple[list[str], list[Any]]:
    """As `scheduler.delivery.sent_log._conditions`: SQL on `touches`, and its values."""
    conditions: list[str] = []
    values: list[Any] = []
    if wanted.touch_ids is not None:
        marks = ", ".join("?" for _ in wanted.touch_ids)
        conditions.append(f"touches.id IN ({marks})")
        values.extend(wanted.touch_ids)
    for column, value in (("status", wanted.status), ("kind", wanted.kind)):
        if value:
            conditions.append(f"touches.{column} = ?")
            values.append(value)
    if wanted.replied:
        conditions.append("touches.replied_at IS NOT NULL")
    if wanted.customer:
        conditions.append(
            "touches.customer_id IN (SELECT customers.id FROM customers "
            "WHERE customers.external_id = ?)"
        )
        values.append(wanted.customer)
    if wanted.since:
        conditions.append("touches.due_at >= ?")
        values.append(_day_start(wanted.since))
    if wanted.until and wanted.until < date.max:  # the last day there is: no end at all
        conditions.append("touches.due_at < ?")
        values.append(_day_start(wanted.until + timedelta(days=1)))
    if wanted.after:
        at, touch_id = wanted.after
        conditions.append("(touches.updated_at < ? OR (touches.updated_at = ? AND touches.id < ?))")
        values.extend([sqlite_utc_text(at), sqlite_utc_text(at), touch_id])
    return conditions, values


def _day_start(day: date) -> str | None:
    return sqlite_utc_text(datetime.combine(day, time(0), UTC))


def _log_row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        column: aware_utc_or_none(value) if column in TIMES else value
        for column, value in zip(LOG_COLUMNS, row, strict=True)
    }


# The status -----------------------------------------------------------------------------------


def queue_status(connection: sqlite3.Connection) -> QueueStatus:
    """As `scheduler.service.queue_status.queue_status`, in one read transaction."""
    connection.execute("BEGIN")
    try:
        waiting = ", ".join("?" for _ in WAITING)
        oldest_query = f"SELECT min(due_at) FROM touches WHERE status IN ({waiting})"  # noqa: S608
        (oldest,) = connection.execute(
            f"{oldest_query} AND channel = ?", [*WAITING, "email"]
        ).fetchone()
        cycle_text = _app_state(connection, LAST_CYCLE)
        cycle = cycle_from_json(cycle_text)
        until = datetime.fromisoformat(cycle["at"]) if cycle else None
        throttle_text = _app_state(connection, THROTTLED)
        throttled: Throttle | None = throttle_from_json(throttle_text) if throttle_text else None
        return QueueStatus(
            last_cycle=cycle,
            by_status=status_counts(connection),
            oldest_due=aware_utc_or_none(oldest),
            paused=_app_state(connection, PAUSED),
            throttled=throttled,
            template_failures=template_failures(connection, until),
            by_hand=by_hand(connection),
            replies=replies_by_kind(connection),
        )
    finally:
        connection.rollback()


def _app_state(connection: sqlite3.Connection, name: str) -> str | None:
    found = connection.execute("SELECT value FROM app_state WHERE name = ?", [name]).fetchone()
    return None if found is None else found[0]


def status_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """As `scheduler.store.queue_counts.status_counts` on SQLite (the same one statement:
    each status but sent in its own range of the status index, the ranges between the
    vocabulary's words, and every note; sent is the rest)."""
    parts: list[str] = []
    values: list[Any] = []
    for name in STATUSES:
        if name != SENT:
            parts.append("SELECT ?, (SELECT count(*) FROM touches WHERE status = ?)")
            values.extend([name, name])
    words = sorted(STATUSES)
    for below, above in zip([None, *words], [*words, None], strict=True):
        between = []
        if below is not None:
            between.append("status > ?")
            values.append(below)
        if above is not None:
            between.append("status < ?")
            values.append(above)
        range_query = f"SELECT status, count(*) FROM touches WHERE {' AND '.join(between)}"  # noqa: S608
        parts.append(f"{range_query} GROUP BY status")
    parts.append("SELECT NULL, (SELECT count(*) FROM touches)")
    rows = connection.execute(" UNION ALL ".join(parts), values).fetchall()
    counts = {status: count for status, count in rows if status is not None}
    every = next(count for status, count in rows if status is None)
    counts[SENT] = every - sum(counts.values())
    return {status: count for status, count in sorted(counts.items()) if count}


def template_failures(
    connection: sqlite3.Connection, until: datetime | None
) -> list[TemplateFailures]:
    """As `scheduler.notes.failures_query.template_failures`."""
    query = (
        "SELECT reason, count(*), max(updated_at) FROM touches "
        "WHERE status = 'failed' AND reason LIKE ? ESCAPE '/'"
    )
    values: list[Any] = [_like_prefix(TEMPLATE_FAILURE)]
    if until is not None:
        query += " AND updated_at >= ?"
        values.append(sqlite_utc_text(until - RECENT))
    rows = connection.execute(query + " GROUP BY reason", values).fetchall()
    return most_first(
        [
            TemplateFailures(reason.removeprefix(TEMPLATE_FAILURE), count, aware_utc(at))
            for reason, count, at in rows
        ]
    )


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern for text starting with `prefix` (its own `%`, `_` and `/` escaped)."""
    escaped = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"{escaped}%"


def replies_by_kind(connection: sqlite3.Connection) -> dict[str, int]:
    """As `scheduler.service.queue_status.replies_by_kind`."""
    rows = connection.execute(
        "SELECT touches.kind, count(DISTINCT inbound_messages.touch_id) FROM inbound_messages "
        "JOIN touches ON touches.id = inbound_messages.touch_id "
        "WHERE inbound_messages.kind = 'reply' GROUP BY touches.kind"
    ).fetchall()
    return dict(sorted((kind, count) for kind, count in rows))


def by_hand(connection: sqlite3.Connection) -> dict[str, int]:
    """As `scheduler.service.queue_status.by_hand` (the same condition, so the same partial
    index)."""
    rows = connection.execute(
        "SELECT channel, status, count(*) FROM touches WHERE channel <> 'email' "
        "GROUP BY channel, status"
    ).fetchall()
    return waiting_by_channel(rows)
