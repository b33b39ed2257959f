"""The daily summary the service logs each night: what went out in the last day, and what
came back, with the replies by occasion (whether the notes land).

Rules: the day is the 24 hours before `now`; notes count by their send time (`sent_at`), what
came back by when it was received; a reply counts for the occasion of the note it answers; the
cards and calls still waiting for the owner's hand are named last.
Reads only; once a day, so counting the day's sent notes may read every note.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from scheduler.service.queue_report import by_hand_line
from scheduler.service.queue_status import by_hand
from scheduler.store.models import metadata

touches = metadata.tables["touches"]
inbound_messages = metadata.tables["inbound_messages"]
DAY = timedelta(days=1)


def daily_summary(connection: Connection, now: datetime) -> str:
    """One line for the log (see the module's rules)."""
    since = now - DAY
    sent = connection.execute(
        select(func.count()).select_from(touches).where(touches.c.sent_at > since)
    ).scalar_one()
    counted = connection.execute(
        select(inbound_messages.c.kind, func.count())
        .where(inbound_messages.c.received_at > since)
        .group_by(inbound_messages.c.kind)
    )
    back: dict[str, int] = {row.kind: row[1] for row in counted}
    replies = connection.execute(
        select(touches.c.kind, func.count())
        .join(touches, touches.c.id == inbound_messages.c.touch_id)
        .where(inbound_messages.c.received_at > since, inbound_messages.c.kind == "reply")
        .group_by(touches.c.kind)
        .order_by(touches.c.kind)
    ).all()
    line = f"the last day: {sent} notes sent"
    if back:
        line += "; came back: " + ", ".join(f"{n} {kind}" for kind, n in sorted(back.items()))
    if replies:
        line += "; replies by occasion: " + ", ".join(f"{n} {kind}" for kind, n in replies)
    waiting = by_hand(connection)
    if waiting:
        line += "; " + by_hand_line(waiting).lower()
    return line
