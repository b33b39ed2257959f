"""What `appreciate status` reports (`QueueStatus`), whichever way it was read: through
SQLAlchemy (`scheduler.service.queue_status`) or the quick SQLite path
(`scheduler.service.sqlite_reads`). Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler.delivery.throttle import Throttle
from scheduler.notes.template_failures import TemplateFailures

LAST_CYCLE = "last_cycle"
"""`app_state` name of the last cycle's report (JSON; see `scheduler.service.last_cycle`)."""
ATTENTION = ("failed", "unknown", "held")
"""Statuses a person should look at (`appreciate log --status ...`, `appreciate retry ID`)."""


@dataclass(frozen=True)
class QueueStatus:
    last_cycle: dict[str, Any] | None
    by_status: dict[str, int]
    oldest_due: datetime | None
    """The earliest due time among notes waiting to go (pending or deferred)."""
    paused: str | None
    throttled: Throttle | None
    """The last back-off for a throttling server (it may have run out: the next accepted
    message forgets it)."""
    template_failures: list[TemplateFailures] = field(default_factory=list)
    """Notes still failed on a template, by problem, the most first."""
    replies: dict[str, int] = field(default_factory=dict)
    """Notes a customer answered (a person's reply), by occasion kind: whether notes land."""

    @property
    def attention(self) -> int:
        return sum(self.by_status.get(status, 0) for status in ATTENTION)
