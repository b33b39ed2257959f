"""The practitioner's lifetime value: average margin x purchases per year x remaining years.

For each customer, with their transactions (same-day orders merged) and historical margin up to
the as-of day:
- tenure_years = (as_of_day - first_day + 1) / 365.25: first purchase to the as-of day, both
  days included;
- per_year = transactions / max(tenure_years, 1.0): a customer younger than a year is not
  extrapolated from a few weeks;
- average = historical / transactions (the mean margin of a transaction);
- remaining_years = max(0, expected_lifetime_years - tenure_years);
- monthly = average x per_year / 12, received at the end of each month;
- months = min(horizon_months, remaining_years x 12) = n whole months + a fraction f;
- predicted = monthly x [sum over m = 1..n of v^m + f x v^(n+1)], v = (1 + rate)^(-1/12):
  each month discounted from its end, the last partial month pro-rated.

A customer without a transaction is worth 0; a negative average margin gives a negative value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

DAYS_PER_YEAR = 365.25


def simple_predicted(
    transactions: ArrayLike,
    historical: ArrayLike,
    first_day: ArrayLike,
    *,
    as_of_day: int,
    expected_lifetime_years: float = 5.0,
    horizon_months: int = 36,
    annual_discount_rate: float = 0.10,
) -> NDArray[np.float64]:
    """The discounted margin each customer is expected to bring over the horizon (see module)."""
    n_tx = np.asarray(transactions, dtype=np.float64)
    hist = np.asarray(historical, dtype=np.float64)
    first = np.asarray(first_day, dtype=np.float64)
    if hist.shape != n_tx.shape or first.shape != n_tx.shape:
        raise ValueError("transactions, historical and first_day must have the same shape")
    if horizon_months < 0 or annual_discount_rate <= -1.0 or expected_lifetime_years < 0:
        raise ValueError("need horizon_months >= 0, a rate above -100% and a lifetime >= 0")
    tenure = (as_of_day - first + 1.0) / DAYS_PER_YEAR
    per_year = n_tx / np.maximum(tenure, 1.0)
    average = np.divide(hist, n_tx, out=np.zeros_like(hist), where=n_tx > 0)
    monthly = average * per_year / 12.0
    months = np.minimum(
        float(horizon_months), np.maximum(expected_lifetime_years - tenure, 0.0) * 12
    )
    whole = np.floor(months)
    fraction = months - whole
    v = (1.0 + annual_discount_rate) ** (-1.0 / 12.0)
    if v == 1.0:
        factor = months
    else:
        factor = v * (1.0 - v**whole) / (1.0 - v) + fraction * v ** (whole + 1.0)
    result: NDArray[np.float64] = np.where(n_tx > 0, monthly * factor, 0.0)
    return result
