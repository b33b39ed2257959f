"""Read-only questions the commands ask the store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from scheduler.store.models import metadata
from scheduler.store.types import CENT

_customers = metadata.tables["customers"]
_orders = metadata.tables["orders"]
_referrals = metadata.tables["referrals"]


def birthday_text(year: int | None, month: int | None, day: int | None) -> str | None:
    """`1988-07-09`, or `--02-29` for a birthday without a year (the import format)."""
    if month is None or day is None:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def customer_overview(connection: Connection, limit: int | None = None) -> list[dict[str, Any]]:
    """Each customer with their order count, total spent and who referred them."""
    order_totals = (
        select(
            _orders.c.customer_id,
            func.count().label("orders"),
            func.sum(_orders.c.amount).label("spent"),
        )
        .group_by(_orders.c.customer_id)
        .subquery()
    )
    referrer = _customers.alias("referrer")
    query = (
        select(
            _customers.c.external_id,
            _customers.c.name,
            _customers.c.email,
            _customers.c.birth_year,
            _customers.c.birth_month,
            _customers.c.birth_day,
            _customers.c.timezone,
            _customers.c.opted_out_at,
            func.coalesce(order_totals.c.orders, 0).label("orders"),
            order_totals.c.spent,
            referrer.c.external_id.label("referred_by"),
        )
        .outerjoin(order_totals, order_totals.c.customer_id == _customers.c.id)
        .outerjoin(_referrals, _referrals.c.referred_id == _customers.c.id)
        .outerjoin(referrer, referrer.c.id == _referrals.c.referrer_id)
        .order_by(_customers.c.external_id)
        .limit(limit)
    )
    return [
        {
            "id": row.external_id,
            "name": row.name,
            "email": row.email,
            "birthday": birthday_text(row.birth_year, row.birth_month, row.birth_day),
            "timezone": row.timezone,
            "orders": row.orders,
            "spent": _money(row.spent),
            "referred_by": row.referred_by,
            "opted_out": _local_date(row.opted_out_at, row.timezone),
        }
        for row in connection.execute(query)
    ]


def _local_date(moment: datetime | None, zone_name: str | None) -> date | None:
    """The day `moment` fell on for the customer (UTC when they have no time zone)."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(zone_name) if zone_name else UTC).date()


def _money(value: Any) -> Decimal | None:
    """Sums come back as float on SQLite and Decimal on PostgreSQL: cents either way."""
    if value is None:
        return None
    return Decimal(repr(value) if isinstance(value, float) else value).quantize(CENT)
