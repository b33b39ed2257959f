"""The daily budget: when more notes are due on a day than it allows, the most valuable
customers' notes go first.

Rules, for the notes due on one day (the business's day):
- A budget of 0 means no limit: every note goes.
- Notes the day has already taken (sent, or on their way) count against it first.
- What is left goes to the notes of the customers with the highest lifetime value (`value`;
  a customer not valued yet counts as 0); ties go to the note due earlier, then to the older
  touch.
- The rest are deferred to the first send moment of the next day (in each customer's zone),
  not dropped; a note that the deferral would take past its `expires_at` expires instead. Each
  says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal

from scheduler.occasions.timing import SendWindow


@dataclass(frozen=True)
class DueNote:
    """A note due on the day, with what decides its place in the queue."""

    touch_id: int
    customer_id: int
    due_at: datetime
    expires_at: datetime | None
    value: Decimal
    zone: tzinfo


@dataclass(frozen=True)
class Moved:
    """A note the budget did not fit: deferred to `send_at`, or expired (`send_at` None)."""

    note: DueNote
    send_at: datetime | None
    reason: str


@dataclass(frozen=True)
class BudgetCut:
    kept: list[DueNote]
    moved: list[Moved]


def spend_budget(
    due: Sequence[DueNote],
    *,
    budget: int,
    taken: int,
    day: date,
    next_day_opens: datetime,
    window: SendWindow,
) -> BudgetCut:
    """Split the notes due on `day` into those the budget keeps and those it moves (see the
    module's rules). `taken`: notes the day has already sent or handed to the sender;
    `next_day_opens`: the start of the next business day (UTC)."""
    if not budget:
        return BudgetCut(list(due), [])
    queue = sorted(due, key=lambda note: (-note.value, note.due_at, note.touch_id))
    room = max(budget - taken, 0)
    kept, rest = queue[:room], queue[room:]
    last_kept = kept[-1].value if kept else None
    moved = [_move(note, budget, day, next_day_opens, window, last_kept) for note in rest]
    return BudgetCut(kept, moved)


def _move(
    note: DueNote,
    budget: int,
    day: date,
    next_day_opens: datetime,
    window: SendWindow,
    last_kept: Decimal | None,
) -> Moved:
    full = f"the budget of {budget} notes for {day.isoformat()} was spent"
    if last_kept is None:
        why = f"{full} before this note was due"
    else:
        why = f"{full} on customers of higher value (this one is worth {note.value:.2f}; the "
        why += f"last note that fitted went to one worth {last_kept:.2f})"
    send_at = window.next_moment(max(note.due_at, next_day_opens), note.zone)
    if note.expires_at is not None and send_at > note.expires_at:
        return Moved(note, None, f"{why}, until it was too late to send")
    return Moved(note, send_at, f"{why}; deferred to the next day")
