"""Reviewing the sent-log: notes filtered by status, kind, customer and time; one note whole
with its history; and re-queuing a note on purpose.

Times filter on the note's due time (`--since` from the start of that day, `--until` to its
end, both UTC). Customers are named by their own id (`external_id`). The latest activity comes
first (what just went out, or just changed): `updated_at`, then `id`, both descending.

A page of notes is chosen among the notes alone, through the index of `touches` that matches
the filters (see `scheduler.store.models.Touch`), and only the chosen ones are joined to their
customers: one status in one month matching 100,000 notes costs one pass over their index
entries, not a customer looked up for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, or_, select, true, update

from scheduler.delivery.log_filter import LOG_COLUMNS, LogFilter
from scheduler.errors import AppreciateError
from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.touch_history import record_events
from scheduler.vocabulary import RETRYABLE

__all__ = ["LOG_COLUMNS", "LogFilter", "log_rows", "touch_detail"]

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
touch_events = metadata.tables["touch_events"]
inbound_messages = metadata.tables["inbound_messages"]
LATEST_FIRST = (touches.c.updated_at.desc(), touches.c.id.desc())


class NoSuchTouch(AppreciateError, LookupError):
    """No note has this id."""


class CannotRetry(AppreciateError):
    """Only failed, unknown or held notes are re-queued by hand."""


def _columns() -> list[Any]:
    return [
        touches.c.id,
        customers.c.external_id.label("customer_id"),
        touches.c.kind,
        touches.c.occasion_key,
        touches.c.status,
        touches.c.channel,
        touches.c.reason,
        touches.c.subject,
        touches.c.message_id,
        touches.c.due_at,
        touches.c.sent_at,
        touches.c.attempts,
        touches.c.last_reply,
        touches.c.replied_at,
        touches.c.updated_at,
    ]


def _conditions(wanted: LogFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [true()]
    if wanted.touch_ids is not None:
        conditions.append(touches.c.id.in_(wanted.touch_ids))
    if wanted.status:
        conditions.append(touches.c.status == wanted.status)
    if wanted.kind:
        conditions.append(touches.c.kind == wanted.kind)
    if wanted.replied:
        conditions.append(touches.c.replied_at.is_not(None))
    if wanted.customer:
        theirs = select(customers.c.id).where(customers.c.external_id == wanted.customer)
        conditions.append(touches.c.customer_id.in_(theirs))
    if wanted.since:
        conditions.append(touches.c.due_at >= datetime.combine(wanted.since, time(0), UTC))
    if wanted.until and wanted.until < date.max:  # the last day there is: no end at all
        end = datetime.combine(wanted.until + timedelta(days=1), time(0), UTC)
        conditions.append(touches.c.due_at < end)
    if wanted.after:
        at, touch_id = wanted.after
        conditions.append(
            or_(
                touches.c.updated_at < at,
                and_(touches.c.updated_at == at, touches.c.id < touch_id),
            )
        )
    return conditions


def log_rows(connection: Connection, wanted: LogFilter) -> list[dict[str, Any]]:
    """The notes matching `wanted`, latest activity first, at most `limit` (0: all)."""
    matching = and_(*_conditions(wanted))
    if wanted.limit:
        page = select(touches.c.id).where(matching).order_by(*LATEST_FIRST).limit(wanted.limit)
        matching = touches.c.id.in_(page)
    query = (
        select(*_columns())
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(matching)
        .order_by(*LATEST_FIRST)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


@dataclass(frozen=True)
class TouchDetail:
    row: dict[str, Any]
    headers: str | None
    body_text: str | None
    body_html: str | None
    history: list[dict[str, Any]]
    came_back: list[dict[str, Any]]
    """What came back about the note (bounces, replies...), oldest first."""


def touch_detail(connection: Connection, touch_id: int) -> TouchDetail:
    """One note as sent (headers and bodies) and its history."""
    found = connection.execute(
        select(*_columns(), touches.c.headers, touches.c.body_text, touches.c.body_html)
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(touches.c.id == touch_id)
    ).first()
    if found is None:
        raise NoSuchTouch(f"no note has the id {touch_id}")
    values = dict(found._mapping)
    history = connection.execute(
        select(touch_events.c.at, touch_events.c.status, touch_events.c.reason)
        .where(touch_events.c.touch_id == touch_id)
        .order_by(touch_events.c.id)
    )
    came_back = connection.execute(
        select(
            inbound_messages.c.received_at,
            inbound_messages.c.kind,
            inbound_messages.c.detail,
        )
        .where(inbound_messages.c.touch_id == touch_id)
        .order_by(inbound_messages.c.id)
    )
    return TouchDetail(
        row={key: values[key] for key in LOG_COLUMNS},
        headers=values["headers"],
        body_text=values["body_text"],
        body_html=values["body_html"],
        history=[dict(event._mapping) for event in history],
        came_back=[dict(message._mapping) for message in came_back],
    )


def retryable(connection: Connection, wanted: LogFilter) -> list[int]:
    """The ids of the notes `wanted` names that can be sent again (failed, unknown or held;
    `wanted.status`, when given, must be one of these), oldest first."""
    if wanted.status is not None and wanted.status not in RETRYABLE:
        raise CannotRetry(
            f"{wanted.status} notes cannot be sent again; only {', '.join(RETRYABLE)} ones can"
        )
    query = (
        select(touches.c.id)
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(and_(touches.c.status.in_(RETRYABLE), *_conditions(wanted)))
        .order_by(touches.c.id)
    )
    return list(connection.execute(query).scalars())


MISSING_SHOWN = 10
"""Ids an error names of the notes not found; the rest are counted."""


def _no_such_notes(missing: Sequence[int]) -> str:
    """ "no note has the id 7"; "no note has the ids 1, 2, ..., 10 and 19,990 more"."""
    if len(missing) == 1:
        return f"no note has the id {missing[0]}"
    shown = ", ".join(map(str, missing[:MISSING_SHOWN]))
    more = len(missing) - MISSING_SHOWN
    return f"no note has the ids {shown}" + (f" and {more:,} more" if more > 0 else "")


def requeue(connection: Connection, touch_ids: Sequence[int], now: datetime) -> dict[int, str]:
    """Send failed, unknown or held notes again (with the same Message-ID); each one's old
    status. Checks them all first: an id that is no note, or a note in another status, raises
    and nothing is re-queued.

    Asked for by a person, so they go out whatever their lateness and outside the daily budget,
    with a fresh set of attempts; their due time stays as it was (the log keeps its place).
    """
    found: dict[int, str] = {}
    for part in chunked(sorted(set(touch_ids))):
        rows = connection.execute(
            select(touches.c.id, touches.c.status).where(touches.c.id.in_(part))
        )
        found.update({row.id: row.status for row in rows})
    missing = sorted({touch_id for touch_id in touch_ids if touch_id not in found})
    if missing:
        raise NoSuchTouch(_no_such_notes(missing))
    for touch_id, status in found.items():
        if status not in RETRYABLE:
            raise CannotRetry(
                f"note {touch_id} is {status}; only {', '.join(RETRYABLE)} notes can be sent again"
            )
    events = [(t, "pending", f"re-queued by hand (it was {status})") for t, status in found.items()]
    connection.execute(
        update(touches)
        .where(and_(touches.c.id == bindparam("touch_id"), touches.c.status == bindparam("was")))
        .values(
            status="pending",
            reason=bindparam("new_reason"),
            retry_at=None,
            planned_at=None,
            expires_at=None,
            attempts=0,
            updated_at=now,
        ),
        [{"touch_id": t, "was": found[t], "new_reason": reason} for t, _, reason in events],
    )
    record_events(connection, events, now)
    return found
