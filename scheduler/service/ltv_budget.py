"""What winning a new customer is worth spending: the acquisition budget.

Rules:
- A new customer's lifetime value is, on average, the total value (spent + expected +
  referrals) of the customers who have bought at least once: a customer won today is expected
  to become one of them. Customers without an order (someone referred who never bought, an
  imported prospect) are left out: they never became customers.
- The budget is `acquisition_share` x that average, overall and per tier (the average within
  the tier: the most worth spending to win one more customer like them). A tier without a
  customer who bought is not listed; a store without one has an overall budget of 0.
- Money is rounded to cents; the budget is never below 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, exists, func, select

from scheduler.store.models import metadata

if TYPE_CHECKING:
    from scheduler.ltv.value import LifetimeValues

customer_values = metadata.tables["customer_values"]
ltv_runs = metadata.tables["ltv_runs"]
orders = metadata.tables["orders"]
CENT = Decimal("0.01")
BUDGET_COLUMNS = ("group", "customers", "average_value", "budget")


@dataclass(frozen=True)
class BudgetLine:
    """One group (all customers who bought, or one tier): how many, their average value, and
    what winning one more is worth spending."""

    group: str
    customers: int
    average_value: Decimal
    budget: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in BUDGET_COLUMNS}


@dataclass(frozen=True)
class AcquisitionBudget:
    share: float
    overall: BudgetLine
    tiers: list[BudgetLine]

    def lines(self) -> list[BudgetLine]:
        return [self.overall, *self.tiers]

    def as_json(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "overall": self.overall.as_dict(),
            "tiers": {line.group: line.as_dict() for line in self.tiers},
        }

    def sentence(self) -> str:
        """The overall budget in words."""
        return (
            f"Acquisition budget: {self.overall.budget:,} per new customer "
            f"({self.share:.0%} of {self.overall.average_value:,}, the average value of the "
            f"{self.overall.customers:,} customers who have bought)"
        )


def budget_of(share: float, groups: dict[str, tuple[int, Decimal]]) -> AcquisitionBudget:
    """The budget from each tier's count and summed total (customers who bought only)."""
    count = sum(n for n, _ in groups.values())
    summed = sum((total for _, total in groups.values()), Decimal(0))
    tiers = [_line(tier, n, total, share) for tier, (n, total) in sorted(groups.items()) if n > 0]
    return AcquisitionBudget(share, _line("all", count, summed, share), tiers)


def stored_budget(connection: Connection, share: float) -> AcquisitionBudget:
    """The budget from the stored values (the latest refresh)."""
    bought = exists().where(orders.c.customer_id == customer_values.c.customer_id)
    rows = connection.execute(
        select(customer_values.c.tier, func.count(), func.sum(customer_values.c.total))
        .where(bought)
        .group_by(customer_values.c.tier)
    )
    return budget_of(share, {row[0]: (int(row[1]), _decimal(row[2])) for row in rows})


@dataclass
class BudgetCache:
    """The stored budget of the latest refresh, kept until the next one: a long-running web
    service reads it on every page without scanning every stored value each time (about a
    second on a million customers). A new refresh (a new `ltv_runs` row) or another share
    computes it again."""

    _key: tuple[int, float] | None = None
    _budget: AcquisitionBudget | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, connection: Connection, share: float) -> AcquisitionBudget | None:
        """The budget of the latest refresh, or None before the first one."""
        run = connection.execute(select(func.max(ltv_runs.c.id))).scalar()
        if run is None:
            return None
        key = (int(run), share)
        with self._lock:
            if self._key == key and self._budget is not None:
                return self._budget
        budget = stored_budget(connection, share)
        with self._lock:
            self._key, self._budget = key, budget
        return budget


def computed_budget(values: LifetimeValues, share: float) -> AcquisitionBudget:
    """The budget from values computed for a report (customers with a transaction)."""
    import numpy as np  # noqa: PLC0415 - the web service loads this module; numpy only here

    bought = values.transactions > 0
    labels = values.tier_labels()
    groups: dict[str, tuple[int, Decimal]] = {}
    for tier in np.unique(labels[bought]).tolist():
        chosen = bought & (labels == tier)
        total = sum((_decimal(v) for v in values.total[chosen].tolist()), Decimal(0))
        groups[str(tier)] = (int(np.count_nonzero(chosen)), total)
    return budget_of(share, groups)


def _line(group: str, customers: int, total: Decimal, share: float) -> BudgetLine:
    average = (total / customers).quantize(CENT) if customers else Decimal("0.00")
    budget = max(Decimal("0.00"), (average * Decimal(repr(share))).quantize(CENT))
    return BudgetLine(group, customers, average, budget)


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
