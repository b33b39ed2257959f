"""The small-base lifetime value: the owner's formula, each part blended with the business's.

predicted = average order x purchases a year x years still to come (discounted), where

- average order: the mean margin of the customer's transactions (same-day orders are one),
  blended with the business's (every transaction's margin / every transaction) with weight
  `prior_orders`: (n x own + k x business) / (n + k), n = their transactions. One large order
  moves a customer's average; it does not replace the business's;
- purchases a year: their repeat transactions (after the first, which only starts the clock) per
  year since their first one, blended with the business's (all repeat transactions / all
  customer-years) with weight `prior_years`: (x + k x business) / (years + k), the same blend
  with n = their years of history. A customer seen today for the first time gets the business's
  figure; a one-time customer of three years ago gets a quarter of it (k = 1);
- years still to come: `expected_lifetime_years` minus the years since their last purchase
  (never below 0). A customer who keeps coming back has a whole lifetime ahead however long they
  have stayed: with a steady share of customers leaving each year, how long one has stayed says
  nothing of how long they will (a 10-year patient seen last month is not worth less than a new
  one); a customer not seen for a whole lifetime is taken as gone.

As a customer's history grows (n or years to infinity), each blended part tends to their own
figure. The prior weights are the business's average counted as k orders and k years of the
customer's own history (Buhlmann credibility, the empirical-Bayes blend of actuaries; with a
Gamma prior on the purchase rate the blended rate is its posterior mean).

Money flows month by month: monthly = average x per_year / 12, received at the end of each
month for min(horizon_months, years still to come x 12) months (the last partial month
pro-rated), each discounted at (1 + annual_discount_rate)^(-1/12) per month.

A customer without a transaction has no row (their predicted value is 0: nothing says they will
buy); a business whose customers have no history yet (every first order today) has a business
rate of 0. Negative margins are blended like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scheduler.ltv.summary import PurchaseSummary

DAYS_PER_YEAR = 365.25
PRIOR_ORDERS = 3.0
PRIOR_YEARS = 1.0


def blend(
    own: ArrayLike, evidence: ArrayLike, business: float, prior: float
) -> NDArray[np.float64]:
    """(evidence x own + prior x business) / (evidence + prior); the business's figure where
    there is no evidence (own is then ignored, even NaN). Needs prior > 0."""
    if not prior > 0:
        raise ValueError("the prior weight must be above 0")
    n = np.asarray(evidence, dtype=np.float64)
    mine = np.where(n > 0, np.asarray(own, dtype=np.float64), 0.0)
    result: NDArray[np.float64] = (n * mine + prior * business) / (n + prior)
    return result


@dataclass(frozen=True)
class BlendParts:
    """Each part of each summary row, the customer's own and blended, and the business's."""

    transactions: NDArray[np.int64]
    own_order: NDArray[np.float64]
    order: NDArray[np.float64]
    repeats: NDArray[np.int64]
    years: NDArray[np.float64]
    own_per_year: NDArray[np.float64]
    per_year: NDArray[np.float64]
    quiet_years: NDArray[np.float64]
    years_left: NDArray[np.float64]
    predicted: NDArray[np.float64]
    business_order: float
    business_per_year: float
    prior_orders: float
    prior_years: float
    expected_lifetime_years: float

    def params(self) -> dict[str, float]:
        """The business's figures and the weights, as the model's parameters."""
        return {
            "business_order": self.business_order,
            "business_per_year": self.business_per_year,
            "prior_orders": self.prior_orders,
            "prior_years": self.prior_years,
            "expected_lifetime_years": self.expected_lifetime_years,
        }


def blended_parts(
    summary: PurchaseSummary,
    *,
    prior_orders: float = PRIOR_ORDERS,
    prior_years: float = PRIOR_YEARS,
    expected_lifetime_years: float = 5.0,
    horizon_months: int = 36,
    annual_discount_rate: float = 0.10,
) -> BlendParts:
    """Every part of the blend for each row of `summary` (see the module)."""
    if horizon_months < 0 or annual_discount_rate <= -1.0 or expected_lifetime_years < 0:
        raise ValueError("need horizon_months >= 0, a rate above -100% and a lifetime >= 0")
    n_tx = summary.transactions
    hist = summary.historical
    total_tx = int(n_tx.sum())
    business_order = float(hist.sum()) / total_tx if total_tx else 0.0
    own_order = np.divide(hist, n_tx, out=np.zeros_like(hist), where=n_tx > 0)
    order = blend(own_order, n_tx, business_order, prior_orders)

    years = (summary.as_of_day - summary.first_day) / DAYS_PER_YEAR
    all_years = float(years.sum())
    business_per_year = float(summary.x.sum()) / all_years if all_years > 0 else 0.0
    own_per_year = np.divide(
        summary.x.astype(np.float64), years, out=np.zeros_like(years), where=years > 0
    )
    per_year = blend(own_per_year, years, business_per_year, prior_years)

    quiet_years = (summary.as_of_day - summary.last_day) / DAYS_PER_YEAR
    years_left = np.maximum(expected_lifetime_years - quiet_years, 0.0)
    months = np.minimum(float(horizon_months), years_left * 12.0)
    predicted = order * per_year / 12.0 * month_factor(months, annual_discount_rate)
    return BlendParts(
        transactions=n_tx,
        own_order=own_order,
        order=order,
        repeats=summary.x,
        years=years,
        own_per_year=own_per_year,
        per_year=per_year,
        quiet_years=quiet_years,
        years_left=years_left,
        predicted=predicted,
        business_order=business_order,
        business_per_year=business_per_year,
        prior_orders=prior_orders,
        prior_years=prior_years,
        expected_lifetime_years=expected_lifetime_years,
    )


def month_factor(months: NDArray[np.float64], annual_discount_rate: float) -> NDArray[np.float64]:
    """Sum over m = 1..n of v^m + f x v^(n+1), months = n + f, v = (1 + rate)^(-1/12): what a
    unit received at the end of each month is worth today."""
    whole = np.floor(months)
    fraction = months - whole
    v = (1.0 + annual_discount_rate) ** (-1.0 / 12.0)
    if v == 1.0:
        return months
    factor: NDArray[np.float64] = v * (1.0 - v**whole) / (1.0 - v) + fraction * v ** (whole + 1.0)
    return factor
