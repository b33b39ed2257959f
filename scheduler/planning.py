"""A day's plan: which notes would go out, to whom, when, and which would not and why.

The plan runs detection as of the end of the day and applies the daily budget, in a
transaction it rolls back, then lists the touches due that day (in the business's time zone)
and those the budget moved to a later day: so it shows what the daemon would do, occasions not
yet recorded included, and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, and_, select

from scheduler.daily_budget import BudgetReport, apply_budget
from scheduler.detection import customers, detect_on
from scheduler.occasions.timing import local_moment
from scheduler.outbox import touches
from scheduler.settings import Settings
from scheduler.store.bulk import chunked
from scheduler.store.db import write_transaction


@dataclass(frozen=True)
class PlanLine:
    due_at: datetime
    customer: str
    name: str
    kind: str
    occasion: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class Plan:
    lines: list[PlanLine]
    budget: BudgetReport


def plan_day(engine: Engine, settings: Settings, day: date) -> Plan:
    """Every touch due on local `day` of the business, as detection and the daily budget
    would leave them, and those the budget moves to a later day."""
    zone = ZoneInfo(settings.business.timezone)
    start = local_moment(day, time(0), zone)
    end = local_moment(day + timedelta(days=1), time(0), zone)
    with write_transaction(engine) as connection:
        detect_on(connection, settings, end)
        budget = apply_budget(connection, settings, start)
        rows = _lines(connection, and_(touches.c.due_at >= start, touches.c.due_at < end))
        for part in chunked(budget.moved):
            rows += _lines(connection, touches.c.id.in_(part))
        connection.rollback()
    unique = {(row.customer, row.occasion): row for row in rows}
    ordered = sorted(unique.values(), key=lambda line: (line.due_at, line.customer, line.occasion))
    return Plan(ordered, budget)


def _lines(connection: Connection, condition: ColumnElement[bool]) -> list[PlanLine]:
    rows = connection.execute(
        select(
            touches.c.due_at,
            customers.c.external_id,
            customers.c.name,
            touches.c.kind,
            touches.c.occasion_key,
            touches.c.status,
            touches.c.reason,
        )
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(condition)
    ).all()
    return [PlanLine(*row) for row in rows]
