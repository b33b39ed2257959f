"""What `appreciate status` reports: the last cycle, the queue by status, the oldest note due,
the notes that need a person, the notes customers answered (by occasion), the notes that failed
on a template (see `scheduler.notes.template_failures`: still failed, in the week up to the last
cycle, grouped by problem), and whether sending is paused or slowed down (the back-off of a
throttling mail server). Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from scheduler.delivery.claims import CLAIMABLE, paused_reason, throttled
from scheduler.notes.failures_query import template_failures
from scheduler.service.last_cycle import last_cycle
from scheduler.service.queue_report import ATTENTION, QueueStatus
from scheduler.store.models import metadata
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
