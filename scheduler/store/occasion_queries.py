"""The queries that feed occasion detection, each through an index (tests check the plans).

Every query that reads customers brings their contact columns too (`CONTACT_COLUMNS`), so a run
knows whom it may write to without asking again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select

from scheduler.config.settings import time_zone_names
from scheduler.store.models import metadata

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
CONTACT_COLUMNS = (customers.c.timezone, customers.c.email, customers.c.opted_out_at)
"""Selected with every fact, so the run knows each customer's contact without asking again."""


def birthday_query(
    groups: Iterable[tuple[Iterable[tuple[int, int]], ColumnElement[bool] | None]],
) -> Select[Any]:
    """Customers born on any of the (month, day) pairs of a group and, when the group has one,
    matching its zone condition; through the month-day index: one `month = m AND day IN (...)`
    per month and group."""
    conditions = []
    for pairs, zones in groups:
        by_month: dict[int, list[int]] = {}
        for month, day in sorted(pairs):
            by_month.setdefault(month, []).append(day)
        for month, days in by_month.items():
            on_day = and_(customers.c.birth_month == month, customers.c.birth_day.in_(days))
            conditions.append(on_day if zones is None else and_(on_day, zones))
    return select(
        customers.c.id,
        customers.c.birth_month,
        customers.c.birth_day,
        customers.c.birth_year,
        *CONTACT_COLUMNS,
    ).where(or_(*conditions))


def zone_clause(names: frozenset[str], default_too: bool) -> ColumnElement[bool]:
    """Customers in one of these zones; with `default_too`, also those without a zone (or
    with one this machine does not know), who live in the business's."""
    condition = customers.c.timezone.in_(sorted(names))
    if not default_too:
        return condition
    unknown = customers.c.timezone.not_in(sorted(time_zone_names()))
    return or_(condition, customers.c.timezone.is_(None), unknown)


def anniversary_query(
    groups: Iterable[tuple[Sequence[date], ColumnElement[bool] | None]],
) -> Select[Any]:
    """Customers who became customers on any of a group's dates (and match its zone
    condition, if any), through the customer_since index."""
    conditions = [
        customers.c.customer_since.in_(dates)
        if zones is None
        else and_(customers.c.customer_since.in_(dates), zones)
        for dates, zones in groups
    ]
    return select(customers.c.id, customers.c.customer_since, *CONTACT_COLUMNS).where(
        or_(*conditions)
    )


def first_met_on_query(first: date, last: date) -> Select[Any]:
    """Customers first met on a day from `first` to `last`, through the first_met_on index."""
    return select(customers.c.id, customers.c.first_met_on, *CONTACT_COLUMNS).where(
        customers.c.first_met_on.between(first, last)
    )


def _orders_with_zone() -> Select[Any]:
    return select(
        orders.c.id,
        orders.c.external_id,
        orders.c.customer_id,
        orders.c.placed_at,
        orders.c.amount,
        orders.c.created_at,
        *CONTACT_COLUMNS,
    ).join(customers, customers.c.id == orders.c.customer_id)


def new_orders_query(last_id: int) -> Select[Any]:
    """Orders after the watermark, with their customer's zone, by the primary key."""
    return _orders_with_zone().where(orders.c.id > last_id).order_by(orders.c.id)


def placed_between_query(start: datetime, end: datetime) -> Select[Any]:
    """Orders placed from `start` to `end`, with their customer's zone, by the placed_at index."""
    return _orders_with_zone().where(orders.c.placed_at.between(start, end))


def neighbours_query(
    customer_ids: Sequence[int], earliest: datetime, latest: datetime
) -> Select[Any]:
    """These customers' orders placed in `earliest..latest`, through (customer, placed_at)."""
    return select(
        orders.c.customer_id, orders.c.external_id, orders.c.placed_at, orders.c.amount
    ).where(
        and_(orders.c.customer_id.in_(customer_ids), orders.c.placed_at.between(earliest, latest))
    )
