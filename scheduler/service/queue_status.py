"""What `appreciate status` reports: the last cycle, the queue by status, the oldest note due,
the notes that need a person, the notes customers answered (by occasion), the notes that failed
on a template (see `scheduler.notes.template_failures`: still failed, in the week up to the last
cycle, grouped by problem), and whether sending is paused or slowed down (the back-off of a
throttling mail server). Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select, true

from scheduler.delivery.claims import CLAIMABLE, paused_reason, throttled
from scheduler.notes.failures_query import template_failures
from scheduler.service.last_cycle import last_cycle
from scheduler.service.queue_report import ATTENTION, QueueStatus, waiting_by_channel
from scheduler.store.models import BY_HAND, metadata
from scheduler.store.queue_counts import status_counts

touches = metadata.tables["touches"]
inbound_messages = metadata.tables["inbound_messages"]
__all__ = ["ATTENTION", "QueueStatus", "queue_status", "replies_by_kind"]


def queue_status(connection: Connection) -> QueueStatus:
    oldest = connection.execute(
        select(func.min(touches.c.due_at)).where(
            touches.c.status.in_(CLAIMABLE), touches.c.channel == "email"
        )
    ).scalar()
    cycle = last_cycle(connection)
    until = datetime.fromisoformat(cycle["at"]) if cycle else None
    return QueueStatus(
        last_cycle=cycle,
        by_status=status_counts(connection),
        oldest_due=oldest,
        paused=paused_reason(connection),
        throttled=throttled(connection),
        template_failures=template_failures(connection, until),
        by_hand=by_hand(connection),
        replies=replies_by_kind(connection),
    )


def replies_by_kind(connection: Connection) -> dict[str, int]:
    """How many notes of each occasion kind a customer answered, from what came back (a small
    table), not by reading every note."""
    answered = (
        select(touches.c.kind, func.count(func.distinct(inbound_messages.c.touch_id)))
        .join(touches, touches.c.id == inbound_messages.c.touch_id)
        .where(inbound_messages.c.kind == "reply")
        .group_by(touches.c.kind)
    )
    return dict(sorted((kind, count) for kind, count in connection.execute(answered)))


def by_hand(connection: Connection, due_before: datetime | None = None) -> dict[str, int]:
    """Cards to print and calls to make (waiting notes of those channels), by channel; with
    `due_before`, only those due before it (a plan's day). Counted by channel and status over
    the small partial index of cards and calls alone (a condition on the status too would let
    SQLite choose the status index and read every waiting email)."""
    counted = (
        select(touches.c.channel, touches.c.status, func.count())
        .where(BY_HAND, true() if due_before is None else touches.c.due_at < due_before)
        .group_by(touches.c.channel, touches.c.status)
    )
    return waiting_by_channel((row[0], row[1], row[2]) for row in connection.execute(counted))
