"""Applying the daily budget to the outbox (the rules are in `scheduler.occasions.budget`).

The day is the business's (its time zone). Notes the day has taken are the touches sent, or
handed to a sender, that day (by their send time, else their last change). The notes due are
the open touches (pending or deferred) due before the day ends, overdue ones and those the
budget moved to a later day included, so every run plans them all again with what it knows.

What the plan changes, in the caller's transaction, each with a reason and a history event:
- a note planned for a later day becomes `deferred` with `planned_at`, the moment it may go
  that day (its send window opening in the customer's zone); `due_at` keeps the occasion's own
  time, so the sent-log still says when it fell due;
- a note the budget had moved and that now fits the day goes back to `pending`;
- a note no day can hold in time becomes `expired`.
A note's last day is the last business day on which its send moment is not past its
`expires_at`. Only email notes count, taken or due: cards and calls are not sent by mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, bindparam, func, select, update

from scheduler.config.settings import Settings
from scheduler.occasions.budget import BudgetNote, plan_budget
from scheduler.occasions.timing import SendWindow, local_moment
from scheduler.store.models import metadata
from scheduler.store.outbox import OPEN, TAKEN, touches
from scheduler.store.touch_history import record_events
from scheduler.store.types import aware_utc, aware_utc_or_none
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]
LAST_DAY_SEARCH = 8
"""Business days looked back from a note's expiry for the last one it can still go on."""


@dataclass(frozen=True)
class BudgetReport:
    """What applying the budget did on one day."""

    day: date
    budget: int
    taken: int
    kept: int
    deferred: int
    """Notes due that the budget plans for a later day."""
    expired: int


@dataclass(frozen=True)
class _Due:
    touch_id: int
    status: str
    due_at: datetime
    expires_at: datetime | None
    retry_at: datetime | None
    planned_at: datetime | None
    value: Decimal
    zone: tzinfo


class _Days:
    """The business's days and when a note could go on each."""

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.budget = settings.schedule.daily_budget
        self.zone = ZoneInfo(settings.business.timezone)
        self.now = now
        self.today = now.astimezone(self.zone).date()
        self.window = SendWindow.from_settings(settings.schedule)

    def start(self, day: date) -> datetime:
        return local_moment(day, time(0), self.zone)

    def send_moment(self, note: _Due, day: date) -> datetime:
        """When `note` would go on business `day`: today as soon as it is due (and any retry
        wait is over); a later day when its send window opens in the customer's zone."""
        earliest = max(note.due_at, note.retry_at or note.due_at)
        if day == self.today:
            return max(earliest, self.now)
        return self.window.next_moment(max(earliest, self.start(day)), note.zone)

    def last_day(self, note: _Due) -> date | None:
        """The last day `note` is still in time on, or None if it never becomes too late.
        A note already too late today has a last day before today."""
        if note.expires_at is None:
            return None
        day = min(note.expires_at.astimezone(self.zone).date(), self.today + timedelta(3650))
        for _ in range(LAST_DAY_SEARCH):
            if day < self.today or self.send_moment(note, day) <= note.expires_at:
                return day
            day -= timedelta(days=1)
        return day


def apply_budget(connection: Connection, settings: Settings, now: datetime) -> BudgetReport:
    """Keep each day within `[schedule] daily_budget`, sending the most value in time."""
    days = _Days(settings, now)
    day = days.today
    budget = settings.schedule.daily_budget
    if not budget:
        return BudgetReport(day, 0, 0, 0, 0, 0)
    start, end = days.start(day), days.start(day + timedelta(days=1))
    sent_or_touched = func.coalesce(touches.c.sent_at, touches.c.updated_at)
    taken = connection.execute(
        select(func.count()).where(
            and_(
                touches.c.updated_at >= start,  # never before the send: the index narrows it
                touches.c.status.in_(TAKEN),
                touches.c.channel == "email",
                sent_or_touched >= start,
                sent_or_touched < end,
            )
        )
    ).scalar_one()
    due = _due(connection, settings, end)
    last_days = {note.touch_id: days.last_day(note) for note in due}
    plan = plan_budget(
        [BudgetNote(n.touch_id, n.value, n.due_at, last_days[n.touch_id]) for n in due],
        budget=budget,
        taken=taken,
        first_day=day,
    )
    changes = [
        change
        for note in due
        if (change := _change(note, plan.days.get(note.touch_id), last_days[note.touch_id], days))
    ]
    _write(connection, changes, now)
    kept = sum(1 for planned in plan.days.values() if planned == day)
    deferred = len(plan.days) - kept
    return BudgetReport(day, budget, taken, kept, deferred, len(plan.expired))


def _due(connection: Connection, settings: Settings, end: datetime) -> list[_Due]:
    zones = ZoneBook(ZoneInfo(settings.business.timezone))
    rows = connection.execute(
        select(
            touches.c.id,
            touches.c.status,
            touches.c.due_at,
            touches.c.expires_at,
            touches.c.retry_at,
            touches.c.planned_at,
            func.coalesce(customer_values.c.total, Decimal(0)).label("total"),
            customers.c.timezone,
        )
        .join(customers, customers.c.id == touches.c.customer_id)
        .outerjoin(customer_values, customer_values.c.customer_id == touches.c.customer_id)
        .where(
            and_(touches.c.status.in_(OPEN), touches.c.due_at < end, touches.c.channel == "email")
        )
    )
    return [
        _Due(
            row.id,
            row.status,
            aware_utc(row.due_at),
            aware_utc_or_none(row.expires_at),
            aware_utc_or_none(row.retry_at),
            aware_utc_or_none(row.planned_at),
            Decimal(row.total),
            zones(row.timezone),
        )
        for row in rows
    ]


def _change(note: _Due, day: date | None, last_day: date | None, days: _Days) -> dict[str, Any]:
    """What the plan changes about `note` (empty: nothing)."""
    if day is None:
        if last_day is not None and last_day < days.today:
            why = f"too late to send: it could go until {note.expires_at:%Y-%m-%d %H:%M} UTC"
        else:
            why = (
                f"the daily budget had no room for it in time: every day until {last_day} went "
                f"to notes worth more or that could not wait (this one is worth {note.value:.2f})"
            )
        return _values(note, "expired", note.planned_at, why)
    if day == days.today:
        if note.planned_at is None:
            return {}  # due today and never moved: nothing to change
        return _values(note, "pending", None, f"the daily budget has room for it on {day}")
    planned = days.send_moment(note, day)
    if note.status == "deferred" and note.planned_at == planned:
        return {}
    why = (
        f"the daily budget of {days.budget} notes for {days.today} went to notes worth more or "
        f"that cannot wait as long (this one is worth {note.value:.2f}); planned for {day}"
    )
    return _values(note, "deferred", planned, why)


def _values(note: _Due, status: str, planned: datetime | None, reason: str) -> dict[str, Any]:
    return {
        "touch_id": note.touch_id,
        "old_status": note.status,
        "new_status": status,
        "new_planned_at": planned,
        "new_reason": reason,
    }


_PLAN = (
    update(touches)
    .where(and_(touches.c.id == bindparam("touch_id"), touches.c.status == bindparam("old_status")))
    .values(
        status=bindparam("new_status"),
        planned_at=bindparam("new_planned_at"),
        reason=bindparam("new_reason"),
        updated_at=bindparam("now"),
    )
)


def _write(connection: Connection, changes: list[dict[str, Any]], now: datetime) -> None:
    if not changes:
        return
    connection.execute(_PLAN, [{**change, "now": now} for change in changes])
    record_events(
        connection,
        [(c["touch_id"], c["new_status"], c["new_reason"]) for c in changes],
        now,
    )
