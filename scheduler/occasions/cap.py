"""The frequency cap: at most one note per customer per `min_days_between`.

Rules, for one customer's occasions:
- Notes are at least `gap` apart, counting from the last note already sent or planned.
- When several occasions fall within one gap of each other, the one of higher precedence goes
  first (a birthday before an order's thanks); the others are deferred to the first send
  moment after the gap, not dropped.
- An occasion deferred past its `expires_at` is expired, with a reason naming what took its
  place.
- A gap of zero spaces nothing: every occasion goes when it is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from scheduler.occasions.rules import Occasion
from scheduler.occasions.timing import SendWindow
from scheduler.vocabulary import OccasionKind

PlanStatus = Literal["pending", "deferred", "expired"]


@dataclass(frozen=True)
class Planned:
    """An occasion with the moment it will go (deferred or not), or why it will not."""

    occasion: Occasion
    send_at: datetime
    status: PlanStatus
    reason: str | None = None


def space_out(
    occasions: Iterable[Occasion],
    *,
    last_note_at: datetime | None,
    gap: timedelta,
    precedence: tuple[OccasionKind, ...],
    window: SendWindow,
    zone: tzinfo,
) -> list[Planned]:
    """Plan one customer's `occasions` under the cap (see the module's rules)."""
    rank = {kind: index for index, kind in enumerate(precedence)}
    remaining = sorted(occasions, key=lambda o: (o.due_at, rank[o.kind], o.key))
    free_from = last_note_at + gap if last_note_at is not None and gap else None
    planned: list[Planned] = []
    previous: Occasion | None = None
    while remaining:
        start = remaining[0].due_at if free_from is None else max(remaining[0].due_at, free_from)
        contenders = [o for o in remaining if not gap or o.due_at < start + gap]
        chosen = min(contenders, key=lambda o: (rank[o.kind], o.due_at, o.key))
        remaining.remove(chosen)
        send_at = chosen.due_at
        if free_from is not None and send_at < free_from:
            send_at = window.next_moment(free_from, zone)
        if send_at > chosen.expires_at:
            why = f"the {previous.kind} note took the only slot" if previous else "no slot"
            planned.append(Planned(chosen, send_at, "expired", f"{why} before it became too late"))
            continue
        status: PlanStatus = "deferred" if send_at > chosen.due_at else "pending"
        reason = f"deferred: one note per {gap.days} days" if status == "deferred" else None
        planned.append(Planned(chosen, send_at, status, reason))
        previous = chosen
        free_from = send_at + gap if gap else None
    return planned
