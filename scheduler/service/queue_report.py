"""What `appreciate status` reports (`QueueStatus`), whichever way it was read: through
SQLAlchemy (`scheduler.service.queue_status`) or the quick SQLite path
(`scheduler.service.sqlite_reads`). Standard library only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler.delivery.throttle import Throttle
from scheduler.notes.template_failures import TemplateFailures
from scheduler.vocabulary import WAITING

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
    by_hand: dict[str, int] = field(default_factory=dict)
    """Notes waiting for the owner's own hand, by channel: `card` (to print: `appreciate
    cards`) and `call` (to make: `appreciate calls`); only channels with some."""
    replies: dict[str, int] = field(default_factory=dict)
    """Notes a customer answered (a person's reply), by occasion kind: whether notes land."""

    @property
    def attention(self) -> int:
        return sum(self.by_status.get(status, 0) for status in ATTENTION)


def waiting_by_channel(counts: Iterable[tuple[str, str, int]]) -> dict[str, int]:
    """(channel, status, notes) counts as the waiting notes of each channel that has some."""
    found: dict[str, int] = {}
    for channel, status, notes in counts:
        if status in WAITING:
            found[channel] = found.get(channel, 0) + notes
    return dict(sorted(found.items()))


BY_HAND_COMMANDS = {
    "card": ("card to print", "cards to print", "appreciate cards"),
    "call": ("call to make", "calls to make", "appreciate calls"),
}


def by_hand_line(by_hand: dict[str, int]) -> str:
    """`Waiting for you: 2 cards to print (appreciate cards), 1 call to make (appreciate calls)`."""
    parts = []
    for channel, notes in by_hand.items():
        one, many, command = BY_HAND_COMMANDS.get(channel, (channel, channel, "appreciate log"))
        parts.append(f"{notes} {one if notes == 1 else many} ({command})")
    return "Waiting for you: " + ", ".join(parts)


def cycle_from_json(value: str | None) -> dict[str, Any] | None:
    """The saved last cycle `value` with every part, those an older appreciate did not save
    (`came_back` came later) empty; None: none saved, or what is saved is no cycle with a
    moment (edited by hand, cut short)."""
    if value is None:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        return None
    if not isinstance(found, dict) or not _is_moment(found.get("at")):
        return None
    empty: dict[str, Any] = {
        "added": {},
        "outcomes": {},
        "paused": None,
        "throttled": None,
        "came_back": {},
    }
    return empty | found


def _is_moment(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
