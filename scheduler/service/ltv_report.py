"""What `appreciate ltv` shows: customers by total value, each component, and the model.

Customers are named by their own id (`external_id`). Rows are ordered by total value, highest
first; equal totals by the store's customer order. Money is rounded to cents.

Each customer's goodwill allowance is `goodwill_share` x their total (never below 0): what it
is worth conceding to keep them after a complaint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from scheduler.errors import AppreciateError
from scheduler.ltv.value import LifetimeValues
from scheduler.store.bulk import chunked
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc

customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]
ltv_runs = metadata.tables["ltv_runs"]
CENT = Decimal("0.01")
COLUMNS = (
    "customer_id",
    "historical",
    "predicted",
    "referral",
    "total",
    "p_alive",
    "tier",
    "goodwill",
)


class UnknownCustomer(AppreciateError, LookupError):
    """No customer has the id asked for."""


@dataclass(frozen=True)
class ValueRow:
    customer_id: str
    name: str
    historical: Decimal
    predicted: Decimal
    referral: Decimal
    total: Decimal
    p_alive: float | None
    tier: str
    goodwill: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in (*COLUMNS, "name")}


@dataclass(frozen=True)
class ValueReport:
    kind: str
    params: dict[str, float]
    spend_params: dict[str, float]
    log_likelihood: float | None
    reason: str
    as_of: date
    computed_at: datetime | None
    """None: computed for this report, not stored."""
    customers: list[ValueRow]

    def as_json(self) -> dict[str, Any]:
        model = {
            "kind": self.kind,
            "params": self.params,
            "spend_params": self.spend_params,
            "log_likelihood": self.log_likelihood,
            "reason": self.reason,
        }
        rows = [{column: getattr(row, column) for column in COLUMNS} for row in self.customers]
        return {"model": model, "customers": rows}


def internal_id(connection: Connection, external_id: str) -> int:
    """The store's id of the customer with this id of the business's (UnknownCustomer if none)."""
    found = connection.execute(
        select(customers.c.id).where(customers.c.external_id == external_id)
    ).scalar()
    if found is None:
        raise UnknownCustomer(f'no customer has the id "{external_id}"')
    return int(found)


def goodwill(total: Decimal, share: float) -> Decimal:
    """share x total, to the cent, never below 0."""
    return max(Decimal(0), (total * Decimal(repr(share))).quantize(CENT))


def stored_report(
    connection: Connection,
    top: int,
    customer: str | None,
    goodwill_share: float = 0.10,
) -> ValueReport | None:
    """The stored scores (the latest refresh), or None when there are none yet."""
    run = connection.execute(
        select(ltv_runs).where(ltv_runs.c.id == select(func.max(ltv_runs.c.id)).scalar_subquery())
    ).first()
    if run is None:
        return None
    query = (
        select(
            customers.c.external_id,
            customers.c.name,
            customer_values.c.historical,
            customer_values.c.predicted,
            customer_values.c.referral,
            customer_values.c.total,
            customer_values.c.p_alive,
            customer_values.c.tier,
        )
        .join(customers, customers.c.id == customer_values.c.customer_id)
        .order_by(customer_values.c.total.desc(), customer_values.c.customer_id)
    )
    if customer is not None:
        query = query.where(customer_values.c.customer_id == internal_id(connection, customer))
    elif top:
        query = query.limit(top)
    rows = [
        ValueRow(*row, goodwill=goodwill(Decimal(row.total), goodwill_share))
        for row in connection.execute(query)
    ]
    return ValueReport(
        run.model,
        dict(run.params),
        dict(run.spend_params),
        run.log_likelihood,
        run.reason,
        run.as_of,
        aware_utc(run.computed_at),
        rows,
    )


def computed_report(
    connection: Connection,
    values: LifetimeValues,
    as_of: date,
    top: int,
    customer: str | None,
    goodwill_share: float = 0.10,
) -> ValueReport:
    """A report of values computed for it (not stored)."""
    if customer is not None:
        wanted = np.flatnonzero(values.customer_id == internal_id(connection, customer))
    else:
        order = np.lexsort((values.customer_id, -values.total))
        wanted = order[:top] if top else order
    ids = values.customer_id[wanted].tolist()
    names: dict[int, tuple[str, str]] = {}
    for part in chunked(ids):
        for row in connection.execute(
            select(customers.c.id, customers.c.external_id, customers.c.name).where(
                customers.c.id.in_(part)
            )
        ):
            names[row.id] = (row.external_id, row.name)
    tiers = values.tier_labels()
    rows = [
        ValueRow(
            *names[int(values.customer_id[at])],
            _money(values.historical[at]),
            _money(values.predicted[at]),
            _money(values.referral[at]),
            _money(values.total[at]),
            None if math.isnan(values.p_alive[at]) else float(values.p_alive[at]),
            str(tiers[at]),
            goodwill(_money(values.total[at]), goodwill_share),
        )
        for at in wanted.tolist()
    ]
    return ValueReport(
        values.model,
        values.params,
        values.spend_params,
        values.log_likelihood,
        values.reason,
        as_of,
        None,
        rows,
    )


def money(value: float) -> Decimal:
    """A float amount as a Decimal to the cent."""
    return _money(value)


def _money(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(CENT)
