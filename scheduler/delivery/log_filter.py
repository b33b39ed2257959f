"""What a look at the sent-log asks for (`LogFilter`) and the columns it answers with: shared by
the SQLAlchemy read (`scheduler.delivery.sent_log`) and the quick one
(`scheduler.service.sqlite_reads`). Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

LOG_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "occasion_key",
    "status",
    "channel",
    "reason",
    "subject",
    "message_id",
    "due_at",
    "sent_at",
    "attempts",
    "last_reply",
    "replied_at",
    "updated_at",
)
"""Every column of a sent-log row, in order."""


@dataclass(frozen=True)
class LogFilter:
    status: str | None = None
    kind: str | None = None
    customer: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int = 50
    touch_ids: tuple[int, ...] | None = None
    """These notes alone."""
    replied: bool = False
    """Only notes a customer answered (a person's reply)."""
    after: tuple[datetime, int] | None = None
    """Keyset paging: only notes after this (updated_at, id) in the log's order (older
    activity), so a page costs the same at any depth."""
