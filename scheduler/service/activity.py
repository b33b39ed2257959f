"""What the console's charts show: notes per day over the last days, by what became of them,
and customers by tier with their share of lifetime value. Reads only.

Rules:
- A note counts on the day (UTC) of its latest activity (`updated_at`), in one of three groups:
  `sent`; `needs you` (failed, unknown, held); `not sent` (suppressed, expired, skipped). Notes
  still waiting (pending, deferred, claimed, sending) are not drawn.
- Days run from `days - 1` days before `today` to `today`, every day present (0 when quiet).
- Tiers come from the latest stored values (`customer_values`), vip, regular then new; none
  yet: an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from scheduler.store.models import metadata

touches = metadata.tables["touches"]
customer_values = metadata.tables["customer_values"]
SHOWN_ORDER = {"vip": 0, "regular": 1, "new": 2}
"""Tiers as a person reads them: the most valued first (an unknown name comes last)."""
GROUPS = {
    "sent": ("sent",),
    "needs you": ("failed", "unknown", "held"),
    "not sent": ("suppressed", "expired", "skipped"),
}


@dataclass(frozen=True)
class TierShare:
    tier: str
    customers: int
    value: Decimal
    share: float
    """This tier's part of all customers' lifetime value (0 to 1)."""


def notes_per_day(connection: Connection, today: date, days: int) -> dict[date, dict[str, int]]:
    """Each day's notes by group (see the module's rules)."""
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), UTC)
    group_of = {status: group for group, statuses in GROUPS.items() for status in statuses}
    found: dict[date, dict[str, int]] = {
        first + timedelta(days=n): dict.fromkeys(GROUPS, 0) for n in range(days)
    }
    day = _utc_day(connection)
    rows = connection.execute(
        select(day, touches.c.status, func.count())
        .where(touches.c.updated_at >= start, touches.c.status.in_(list(group_of)))
        .group_by(day, touches.c.status)
    )
    for when, status, count in rows:
        moment = when if isinstance(when, date) else date.fromisoformat(str(when)[:10])
        if moment in found:
            found[moment][group_of[status]] += count
    return found


def _utc_day(connection: Connection) -> ColumnElement[Any]:
    """`updated_at`'s UTC day, as the database writes it (SQLite keeps UTC text)."""
    if connection.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", touches.c.updated_at))
    return func.substr(touches.c.updated_at, 1, 10)


def tier_shares(connection: Connection) -> list[TierShare]:
    """Customers by tier with their share of value: vip, regular, new."""
    rows = connection.execute(
        select(
            customer_values.c.tier,
            func.count(),
            func.coalesce(func.sum(customer_values.c.total), 0),
        ).group_by(customer_values.c.tier)
    ).all()
    total = sum((Decimal(str(value)) for _, _, value in rows), Decimal(0))
    shares = [
        TierShare(
            tier,
            count,
            Decimal(str(value)),
            float(Decimal(str(value)) / total) if total > 0 else 0.0,
        )
        for tier, count, value in rows
    ]
    return sorted(shares, key=lambda share: SHOWN_ORDER.get(share.tier, len(SHOWN_ORDER)))
