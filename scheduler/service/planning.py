"""What the service will do on a day: which notes go, to whom and when, and which do not and why.

A plan runs the code `appreciate run` runs (detection, the frequency cap, the daily budget, the
claim, and the checks each claimed note passes before it is written:
`scheduler.delivery.send_checks`) in one transaction that it rolls back, so it writes nothing.
It does so as if the service ran until the end of each business day from today's to the day
asked for: a note due on an earlier day goes on its day (so a later day's budget and frequency
cap count it), and the plan lists the notes whose fate the day asked for decides:
- `pending`: goes that day, at `send_at`; `sent`: already went that day (today only);
- `deferred`: moved to a later day, by the frequency cap or the daily budget (`send_at` says
  when it may go);
- `expired`, `suppressed`, `skipped`: will not go, and why.
Cards to print and calls to make (the owner's own hand) are not the service's to send: a plan
counts those waiting that day (`by_hand`).
The service's cycles are taken as one cycle at the end of each day: a run then
(`appreciate run --once --now ...`) records the same. What no plan
can know: the mail server's answers, and a template that fails (`appreciate templates check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, or_, select

from scheduler.config.settings import Settings
from scheduler.delivery.claims import Result, claim, record_results
from scheduler.delivery.daily_budget import BudgetReport, apply_budget
from scheduler.delivery.send_checks import check_before_writing, contacts_of
from scheduler.detection.detect import customers, detect_on
from scheduler.occasions.timing import local_moment
from scheduler.service.queue_status import by_hand
from scheduler.store.bulk import chunked
from scheduler.store.db import write_transaction
from scheduler.store.outbox import touches
from scheduler.store.types import aware_utc, aware_utc_or_none

PLANNER = "appreciate plan"
"""The sender a plan claims notes as (only inside its rolled-back transaction)."""
MAX_DAYS_AHEAD = 366


class PlanTooFar(ValueError):
    """A plan reaches at most MAX_DAYS_AHEAD days ahead, and never into the past."""


@dataclass(frozen=True)
class PlanLine:
    due_at: datetime
    send_at: datetime | None
    customer: str
    name: str
    kind: str
    occasion: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class Plan:
    day: date
    lines: list[PlanLine]
    budget: BudgetReport
    by_hand: dict[str, int] = field(default_factory=dict)
    """Cards to print and calls to make that day (the owner's, not the service's), by
    channel."""

    def count(self, *statuses: str) -> int:
        return sum(1 for line in self.lines if line.status in statuses)


def plan_day(engine: Engine, settings: Settings, day: date, now: datetime) -> Plan:
    """The plan for the business's `day` (today, as of `now`, or a later day)."""
    zone = ZoneInfo(settings.business.timezone)
    today = now.astimezone(zone).date()
    if not today <= day <= today + timedelta(days=MAX_DAYS_AHEAD):
        raise PlanTooFar(
            f"{day} is in the past: `appreciate log` shows what happened"
            if day < today
            else f"{day} is more than {MAX_DAYS_AHEAD} days ahead"
        )
    with write_transaction(engine) as connection:
        current = today
        while True:
            end = local_moment(current + timedelta(days=1), time(0), zone)
            moment = max(now, end - timedelta(seconds=1))
            budget, gone = _run_at(connection, settings, moment, now)
            if current == day:
                break
            current += timedelta(days=1)
        start = local_moment(day, time(0), zone)
        lines = _lines(connection, moment, gone, start if day == today else None)
        waiting = by_hand(connection, due_before=end)  # not expired by that day's run
        connection.rollback()
    return Plan(day, lines, budget, waiting)


def _run_at(
    connection: Connection, settings: Settings, moment: datetime, now: datetime
) -> tuple[BudgetReport, dict[int, datetime]]:
    """What one cycle of the service does at `moment`, but the sending itself: every note it
    would hand to the server is marked sent, at `moment` as that cycle would record it.
    Returns the budget's report and, for each note marked sent, when the service running all
    day sends it: when it falls due (and any wait is over), or `now` when that has passed."""
    detect_on(connection, settings, moment)
    budget = apply_budget(connection, settings, moment)
    claimed = claim(connection, PLANNER, moment, settings.smtp.lease, 1_000_000)
    contacts = contacts_of(connection, [touch.customer_id for touch in claimed], settings)
    waits = _waits(connection, [touch.id for touch in claimed])
    results = []
    gone: dict[int, datetime] = {}
    for touch in claimed:
        settled = check_before_writing(touch, contacts.get(touch.customer_id), moment)
        if settled is None:
            retry_at, planned_at = waits[touch.id]
            goes_at = max(touch.due_at, retry_at or touch.due_at, planned_at or touch.due_at)
            gone[touch.id] = max(goes_at, now)
            settled = Result(touch.id, "sent", None, sent_at=moment)
        results.append(settled)
    record_results(connection, PLANNER, results, moment)
    return budget, gone


def _waits(
    connection: Connection, ids: list[int]
) -> dict[int, tuple[datetime | None, datetime | None]]:
    found = {}
    for part in chunked(ids):
        for row in connection.execute(
            select(touches.c.id, touches.c.retry_at, touches.c.planned_at).where(
                touches.c.id.in_(part)
            )
        ):
            found[row.id] = (aware_utc_or_none(row.retry_at), aware_utc_or_none(row.planned_at))
    return found


def _lines(
    connection: Connection,
    moment: datetime,
    gone: dict[int, datetime],
    day_start: datetime | None,
) -> list[PlanLine]:
    """The notes the run at `moment` changed (every write of a run carries its moment), and
    those sent earlier on the day that starts at `day_start` (today's plan only)."""
    changed = touches.c.updated_at == moment
    if day_start is not None:
        changed = or_(
            changed,
            and_(touches.c.status == "sent", touches.c.sent_at >= day_start),
        )
    rows = connection.execute(
        select(
            touches.c.id,
            touches.c.due_at,
            touches.c.planned_at,
            touches.c.sent_at,
            customers.c.external_id,
            customers.c.name,
            touches.c.kind,
            touches.c.occasion_key,
            touches.c.status,
            touches.c.reason,
        )
        .join(customers, customers.c.id == touches.c.customer_id)
        .where(changed)
    ).all()
    lines = []
    for row in rows:
        if row.status == "pending" and row.id not in gone:
            continue  # noticed that day, due on a later one: that day's plan lists it
        status = "pending" if row.id in gone else row.status
        due_at = aware_utc(row.due_at)
        send_at = {
            "pending": gone.get(row.id),
            "sent": aware_utc_or_none(row.sent_at),
            "deferred": aware_utc_or_none(row.planned_at) or due_at,
        }.get(status)
        lines.append(
            PlanLine(
                due_at,
                send_at,
                row.external_id,
                row.name,
                row.kind,
                row.occasion_key,
                status,
                row.reason,
            )
        )
    return sorted(lines, key=_in_order)


def _in_order(line: PlanLine) -> tuple[datetime, str, str]:
    return (line.send_at or line.due_at, line.customer, line.occasion)
