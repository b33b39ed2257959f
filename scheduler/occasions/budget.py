"""The daily budget: when more notes are due than the days allow, the notes that send the most
value in time.

The problem, for the notes due by the end of the first day (the business's day):
- Each day holds `budget` notes; the first holds what is left of it after `taken` (the notes it
  has already sent or handed to a sender).
- A note may go on any day from the first up to its `last_day`, the last day on which it is
  still in time (None: it never becomes too late).
- Choose which notes go and on which day so that the total value (each customer's lifetime
  value; a customer not valued yet counts as 0) of the notes sent in time is as large as it
  can be.

Rules:
- A budget of 0 means no limit: every note goes on the first day.
- Which notes go: the classic greedy for unit jobs with deadlines, which is exact for this
  problem. Notes are taken by value, highest first (equal values: the earlier last day first,
  then the earlier due time, then the older touch); each is kept when a day up to its last day
  still has room, taking the latest such day, so earlier days stay free for notes that cannot
  wait as long.
- When each kept note goes: as early as the days allow, the most valuable first. The kept
  notes are laid out again from the least valuable, each on the latest day it can take, so
  the notes worth least wait longest; then, day by day from the first, the room a day has left
  goes to the most valuable of the notes laid out later (moving a note earlier never makes it
  late). Every kept note is still in time, and no day is left with room while a kept note
  waits.
- A note no day can hold before its last day expires (the notes that took the days were worth
  more, or could not wait).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class BudgetNote:
    """A note that is due, with what decides whether and when it goes."""

    touch_id: int
    value: Decimal
    due_at: datetime
    last_day: date | None
    """The last day on which it is still in time; None: it never becomes too late."""


@dataclass(frozen=True)
class BudgetPlan:
    """Where each note goes: `days` maps a touch id to its day; `expired` lists the rest."""

    days: dict[int, date]
    expired: tuple[int, ...]


def plan_budget(
    notes: Sequence[BudgetNote], *, budget: int, taken: int, first_day: date
) -> BudgetPlan:
    """Give each note a day, or let it expire (see the module's rules)."""
    if not budget:
        return BudgetPlan({note.touch_id: first_day for note in notes}, ())
    open_ended = first_day + timedelta(days=len(notes) // budget + 1)  # room for every note
    horizon = [
        (note, ((note.last_day or open_ended) - first_day).days)
        for note in notes
        if note.last_day is None or note.last_day >= first_day
    ]
    room = [max(budget - taken, 0)] + [budget] * max((last for _, last in horizon), default=0)
    preferred = sorted(horizon, key=lambda item: _by_value(*item))
    choice = _LatestFreeDay(room)
    chosen = [(note, last) for note, last in preferred if choice.take(last) is not None]
    placement = _LatestFreeDay(room)  # the chosen set again, the least valuable latest
    latest = {note.touch_id: placement.take(last) for note, last in reversed(chosen)}
    days = {
        touch_id: first_day + timedelta(days=day)
        for touch_id, day in _earliest_days([note for note, _ in chosen], latest, room).items()
    }
    expired = tuple(note.touch_id for note in notes if note.touch_id not in days)
    return BudgetPlan(days, expired)


def _earliest_days(
    chosen: Sequence[BudgetNote], latest: dict[int, int | None], room: Sequence[int]
) -> dict[int, int]:
    """Move the kept notes (`chosen`, the most valuable first) as early as the days allow: day
    by day, the notes whose latest day it is stay, and the room left goes to the most valuable
    of those that could wait longer (moving a note earlier never makes it late)."""
    by_day: dict[int | None, list[int]] = {}
    for note in chosen:
        by_day.setdefault(latest[note.touch_id], []).append(note.touch_id)
    placed: dict[int, int] = {}
    candidates = iter(chosen)
    for day, capacity in enumerate(room):
        staying = [touch_id for touch_id in by_day.get(day, ()) if touch_id not in placed]
        placed.update(dict.fromkeys(staying, day))
        left = capacity - len(staying)
        while left > 0 and (candidate := next(candidates, None)) is not None:
            if candidate.touch_id not in placed:
                placed[candidate.touch_id] = day
                left -= 1
    return placed


def _by_value(note: BudgetNote, last: int) -> tuple[Decimal, int, datetime, int]:
    """Highest value first; then the earlier last day, due time and touch."""
    return (-note.value, last, note.due_at, note.touch_id)


class _LatestFreeDay:
    """Days with room, each found in near-constant time: `take(d)` books the latest day up to
    `d` that has room (a union-find that points a full day at the day before it)."""

    def __init__(self, room: list[int]) -> None:
        self.room = list(room)
        self.parent = [day if left else day - 1 for day, left in enumerate(room)]

    def _find(self, day: int) -> int:
        root = day
        while root >= 0 and self.parent[root] != root:
            root = self.parent[root]
        while day >= 0 and self.parent[day] != day:  # shorten the path for the next search
            self.parent[day], day = root, self.parent[day]
        return root

    def take(self, last: int) -> int | None:
        """The day booked, or None when every day up to `last` is full."""
        day = self._find(last)
        if day < 0:
            return None
        self.room[day] -= 1
        if not self.room[day]:
            self.parent[day] = day - 1
        return day
