"""A note's history: every status change after it was recorded, with when and why, appended
to `touch_events` by whoever changes it (delivery, an opt-out, a bounce, a person)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from scheduler.store.models import metadata

touch_events = metadata.tables["touch_events"]


def record_events(
    connection: Connection, events: Sequence[tuple[int, str, str | None]], at: datetime
) -> None:
    """Append (touch id, status, reason) to each note's history."""
    if events:
        connection.execute(
            touch_events.insert(),
            [{"touch_id": t, "at": at, "status": s, "reason": r} for t, s, r in events],
        )
