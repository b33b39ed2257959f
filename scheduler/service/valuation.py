"""Lifetime values from the store: compute them (`scheduler.ltv`) and store or show them.

Rules:
- As of a date: orders placed up to and including that local date of the business (its time
  zone) count; later ones are ignored. Without a date, the business's today at `now`.
- A refresh reads in one transaction, computes outside any, then replaces every score in one
  short write transaction (SQLite's write lock is not held while the model is fitted).
- Every customer gets a score, those without orders too (0, or what their referrals earned).
- A score beyond what the store holds is stored as 999999999999.99 and the refresh warns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine

from scheduler.config.settings import LtvSettings, Settings
from scheduler.local_days import LocalDays, day_number
from scheduler.ltv.summary import PurchaseSummary, summarise
from scheduler.ltv.value import LifetimeValues, lifetime_values_from_orders
from scheduler.output import counted
from scheduler.progress import StageProgress
from scheduler.store.db import write_transaction
from scheduler.store.ltv_store import (
    OrderArrays,
    beyond_store,
    read_customer_ids,
    read_orders,
    read_referrals,
    save_values,
)

FITTING = "Fitting the model"


@dataclass(frozen=True)
class ModelSettings:
    """`[ltv]` as the computation names it."""

    margin_rate: float
    horizon_months: int
    annual_discount_rate: float
    model: str
    expected_lifetime_years: float
    referral_credit: float
    vip_share: float
    prior_orders: float
    prior_years: float

    @classmethod
    def of(cls, ltv: LtvSettings) -> ModelSettings:
        return cls(
            margin_rate=ltv.margin,
            horizon_months=ltv.horizon_months,
            annual_discount_rate=ltv.annual_discount_rate,
            model=ltv.model,
            expected_lifetime_years=ltv.expected_lifetime_years,
            referral_credit=ltv.referral_credit,
            vip_share=ltv.vip_share,
            prior_orders=ltv.prior_orders,
            prior_years=ltv.prior_years,
        )


def business_today(settings: Settings, now: datetime) -> date:
    return now.astimezone(ZoneInfo(settings.business.timezone)).date()


@dataclass(frozen=True)
class Valuation:
    values: LifetimeValues
    unreadable_orders: int
    """Orders left out because their time or amount could not be read (see `read_orders`)."""

    def warning(self) -> str | None:
        if not self.unreadable_orders:
            return None
        return (
            f"{counted(self.unreadable_orders, 'order')} "
            f"{'was' if self.unreadable_orders == 1 else 'were'} left out: "
            "their placed_at is not a time "
            "appreciate can read (or lies outside 1900-2200), or their amount is none or not "
            "from 0 to 999999999999.99"
        )


def compute_values(
    connection: Connection,
    settings: Settings,
    as_of: date,
    progress: StageProgress | None = None,
) -> Valuation:
    """Every customer's lifetime value as of local date `as_of` (see the module's rules)."""
    orders = read_orders(connection, progress)
    referrer_ids, referred_ids = read_referrals(connection)
    customer_ids = read_customer_ids(connection)
    if progress:
        progress(FITTING, 0, None)
    values = lifetime_values_from_orders(
        orders.customer_id,
        _local_days(orders, settings),
        orders.amount,
        orders.margin,
        as_of_day=day_number(as_of),
        settings=ModelSettings.of(settings.ltv),
        all_customer_ids=customer_ids,
        referrer_ids=referrer_ids,
        referred_ids=referred_ids,
    )
    if progress:
        progress(FITTING, 1, 1)
    return Valuation(values, orders.unreadable)


def purchase_summary(connection: Connection, settings: Settings, as_of: date) -> PurchaseSummary:
    """Every customer's purchase history as of local date `as_of`, as the models read it."""
    orders = read_orders(connection)
    return summarise(
        orders.customer_id,
        _local_days(orders, settings),
        orders.amount,
        orders.margin,
        as_of_day=day_number(as_of),
        margin_rate=settings.ltv.margin,
    )


def _local_days(orders: OrderArrays, settings: Settings) -> NDArray[np.int64]:
    if not orders.placed.shape[0]:
        return np.empty(0, dtype=np.int64)
    zone = ZoneInfo(settings.business.timezone)
    local = LocalDays(zone, int(orders.placed.min()), int(orders.placed.max()))
    days: NDArray[np.int64] = local.of(orders.placed)
    return days


@dataclass(frozen=True)
class Refreshed:
    run_id: int
    as_of: date
    values: LifetimeValues
    warning: str | None = None


def refresh_values(
    engine: Engine,
    settings: Settings,
    now: datetime,
    as_of: date | None = None,
    progress: StageProgress | None = None,
) -> Refreshed:
    """Compute every customer's value and store it (replacing the previous scores)."""
    as_of = as_of or business_today(settings, now)
    with engine.connect() as connection, connection.begin():
        valuation = compute_values(connection, settings, as_of, progress)
    values = valuation.values
    with write_transaction(engine) as connection:
        run_id = save_values(connection, values, as_of=as_of, computed_at=now, progress=progress)
    warnings = [valuation.warning(), _capped_warning(beyond_store(values))]
    return Refreshed(run_id, as_of, values, "; ".join(w for w in warnings if w) or None)


def _capped_warning(capped: int) -> str | None:
    if not capped:
        return None
    return (
        f"{counted(capped, 'lifetime value')} {'was' if capped == 1 else 'were'} more than "
        "999999999999.99 (what the store holds) and stored as that; look for orders with "
        "amounts far too large"
    )
