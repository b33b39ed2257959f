"""Notes for the owner's own hand (cards to print, calls to make) whose time passed.

Rules: an open card or call (pending, deferred) past its `expires_at` becomes `expired`, with
an event and a reason that says what was not done in time. Detection does this at every tick
(so `status`, Today and the nightly summary count only what can still be done, whether or not
the owner opens `appreciate cards` or `calls`), and so do those commands before they list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Select, and_, bindparam, select, update

from scheduler.output import counted
from scheduler.store.models import BY_HAND, metadata
from scheduler.store.outbox import OPEN, touches

touch_events = metadata.tables["touch_events"]

TOO_LATE = {
    "card": "the card was not printed in time",
    "call": "the call was not made in time",
}
"""Each by-hand channel, and the reason its note expired."""
_MISSED = {"card": "not printed in time", "call": "not made in time"}


def missed(channel: str, count: int) -> str:
    """What `count` expired notes of a channel were: "1 card not printed in time"."""
    return f"{counted(count, channel)} {_MISSED[channel]}"


def overdue_query(channel: str, now: datetime) -> Select[tuple[int]]:
    """The open notes of `channel` past their `expires_at`. It names BY_HAND, the condition of
    the small index of cards and calls, so that both databases read that index: detection
    asks at every tick, and without it SQLite reads every open email through the status
    index."""
    return select(touches.c.id).where(
        and_(
            BY_HAND,
            touches.c.channel == channel,
            touches.c.status.in_(OPEN),
            touches.c.expires_at.is_not(None),
            touches.c.expires_at < now,
        )
    )


def expire_overdue(connection: Connection, channel: str, now: datetime) -> int:
    """Open notes of `channel` past their `expires_at` become expired (with an event); how
    many."""
    ids = [row.id for row in connection.execute(overdue_query(channel, now))]
    if ids:
        set_status(connection, ids, "expired", TOO_LATE[channel], now)
    return len(ids)


def expire_by_hand(connection: Connection, now: datetime) -> dict[str, int]:
    """`expire_overdue` for cards and calls; how many of each expired (only channels with some)."""
    expired = {channel: expire_overdue(connection, channel, now) for channel in TOO_LATE}
    return {channel: count for channel, count in expired.items() if count}


def set_status(
    connection: Connection, ids: Sequence[int], status: str, reason: str | None, now: datetime
) -> None:
    """Move these touches to `status` with `reason`, recording an event for each."""
    connection.execute(
        update(touches)
        .where(touches.c.id == bindparam("touch_id"))
        .values(status=status, reason=reason, updated_at=now),
        [{"touch_id": touch_id} for touch_id in ids],
    )
    connection.execute(
        touch_events.insert(),
        [{"touch_id": t, "at": now, "status": status, "reason": reason} for t in ids],
    )
