"""Applying the daily budget to the outbox (the rules are in `scheduler.occasions.budget`).

The day is the business's (its time zone). Notes the day has taken are the touches sent, or
claimed by a sender, with their send (or due) time inside it; the notes due are the open touches
(pending or deferred) due before the day ends, overdue ones included. Moved touches are
rescheduled or expired with their reason, in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, select

from scheduler.occasions.budget import DueNote, spend_budget
from scheduler.occasions.timing import SendWindow, local_moment
from scheduler.outbox import OPEN, RESCHEDULE, TAKEN, touches
from scheduler.settings import Settings
from scheduler.store.models import metadata
from scheduler.zones import ZoneBook

customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]


@dataclass(frozen=True)
class BudgetReport:
    """What applying the budget did on one day."""

    day: date
    budget: int
    taken: int
    kept: int
    deferred: int
    expired: int
    moved: tuple[int, ...] = ()
    """The touches the budget moved (deferred or expired)."""


def apply_budget(connection: Connection, settings: Settings, now: datetime) -> BudgetReport:
    """Keep the day's notes within `[schedule] daily_budget`, most valuable customers first."""
    zone = ZoneInfo(settings.business.timezone)
    day = now.astimezone(zone).date()
    budget = settings.schedule.daily_budget
    if not budget:
        return BudgetReport(day, 0, 0, 0, 0, 0)
    start = local_moment(day, time(0), zone)
    end = local_moment(day + timedelta(days=1), time(0), zone)
    taken = connection.execute(
        select(func.count()).where(
            and_(
                touches.c.status.in_(TAKEN),
                func.coalesce(touches.c.sent_at, touches.c.due_at) >= start,
                func.coalesce(touches.c.sent_at, touches.c.due_at) < end,
            )
        )
    ).scalar_one()
    zones = ZoneBook(zone)
    due = [
        DueNote(row.id, row.customer_id, row.due_at, row.expires_at, row.total, zones(row.tz))
        for row in connection.execute(
            select(
                touches.c.id,
                touches.c.customer_id,
                touches.c.due_at,
                touches.c.expires_at,
                func.coalesce(customer_values.c.total, Decimal(0)).label("total"),
                customers.c.timezone.label("tz"),
            )
            .join(customers, customers.c.id == touches.c.customer_id)
            .outerjoin(customer_values, customer_values.c.customer_id == touches.c.customer_id)
            .where(and_(touches.c.status.in_(OPEN), touches.c.due_at < end))
        )
    ]
    cut = spend_budget(
        due,
        budget=budget,
        taken=taken,
        day=day,
        next_day_opens=end,
        window=SendWindow.from_settings(settings.schedule),
    )
    changes = [
        {
            "touch_id": move.note.touch_id,
            "new_status": "deferred" if move.send_at else "expired",
            "send_at": move.send_at or move.note.due_at,
            "new_reason": move.reason,
            "now": now,
        }
        for move in cut.moved
    ]
    if changes:
        connection.execute(RESCHEDULE, changes)
    deferred = sum(1 for move in cut.moved if move.send_at)
    moved = tuple(move.note.touch_id for move in cut.moved)
    return BudgetReport(
        day, budget, taken, len(cut.kept), deferred, len(cut.moved) - deferred, moved
    )
