"""What the console's charts show: notes per day over the last days, by what became of them and
by occasion, and customers by tier with their share of lifetime value. Reads only.

Rules:
- A note counts on the day (UTC) of its latest activity (`updated_at`), in one of three groups:
  `sent` (printed cards too); `needs you` (failed, unknown, held); `not sent` (suppressed,
  expired, skipped, and bounced: sent, but it never arrived). Notes still waiting (pending,
  deferred, claimed, sending) are not drawn.
- The same notes count by occasion kind too, each kind of the vocabulary every day (0 when
  none); a kind the vocabulary does not know (written by something else) counts as `other`,
  which appears only when some day has one. So both views give each day the same total.
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
from scheduler.vocabulary import OCCASION_KINDS

touches = metadata.tables["touches"]
customer_values = metadata.tables["customer_values"]
SHOWN_ORDER = {"vip": 0, "regular": 1, "new": 2}
"""Tiers as a person reads them: the most valued first (an unknown name comes last)."""
GROUPS = {
    "sent": ("sent", "printed"),
    "needs you": ("failed", "unknown", "held"),
    "not sent": ("suppressed", "expired", "skipped", "bounced"),
}
OTHER = "other"
"""Where a kind the vocabulary does not know is counted."""


@dataclass(frozen=True)
class TierShare:
    tier: str
    customers: int
    value: Decimal
    share: float
    """This tier's part of all customers' lifetime value (0 to 1)."""


@dataclass(frozen=True)
class DailyNotes:
    """Each day's notes two ways (see the module's rules), oldest day first."""

    by_group: dict[date, dict[str, int]]
    by_kind: dict[date, dict[str, int]]


def daily_notes(connection: Connection, today: date, days: int) -> DailyNotes:
    """The last `days` days' notes by group and by kind, in one pass over their entries in the
    index on `updated_at`, which carries each note's status and kind."""
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), UTC)
    end = datetime.combine(today + timedelta(days=1), time(0), UTC)
    group_of = {status: group for group, statuses in GROUPS.items() for status in statuses}
    shown = [first + timedelta(days=n) for n in range(days)]
    by_group = {day: dict.fromkeys(GROUPS, 0) for day in shown}
    by_kind: dict[date, dict[str, int]] = {day: dict.fromkeys(OCCASION_KINDS, 0) for day in shown}
    day = _utc_day(connection)
    rows = connection.execute(
        select(day, touches.c.status, touches.c.kind, func.count())
        .where(touches.c.updated_at >= start, touches.c.updated_at < end)
        .group_by(day, touches.c.status, touches.c.kind)
    )
    others: dict[date, int] = {}
    for when, status, kind, count in rows:
        moment = when if isinstance(when, date) else date.fromisoformat(str(when)[:10])
        group = group_of.get(status)
        if group is None or moment not in by_group:
            continue
        by_group[moment][group] += count
        if kind in by_kind[moment]:
            by_kind[moment][kind] += count
        else:
            others[moment] = others.get(moment, 0) + count
    if others:
        for moment, counts in by_kind.items():
            counts[OTHER] = others.get(moment, 0)
    return DailyNotes(by_group, by_kind)


def notes_per_day(connection: Connection, today: date, days: int) -> dict[date, dict[str, int]]:
    """Each day's notes by group (see the module's rules)."""
    return daily_notes(connection, today, days).by_group


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
