"""Customer lifetime value: pure functions over numpy arrays (no database, no clock).

- `summary`: orders -> per-customer purchase summary (x, t_x, T, spend, historical).
- `bgnbd`: the BG/NBD purchase model (Fader, Hardie & Lee 2005).
- `gamma_gamma`: the Gamma-Gamma spend model (Fader & Hardie 2013).
- `blend`: the small-base model: the owner's formula (average order x purchases a year x
  years to come), each part blended with the business's average.
- `referral`: credit for the customers a customer referred.
- `value`: everything combined, the model choice and the tiers.

May import only numpy, scipy, threadpoolctl (`blas_threads`: the fits' BLAS threads) and the
leaf modules (`scheduler.tiers`); reading values from the store and storing them is
`scheduler.service.valuation`.
"""

from __future__ import annotations

from scheduler.ltv.summary import PurchaseSummary, summarise
from scheduler.ltv.value import (
    LifetimeValues,
    LtvSettings,
    LtvSettingsLike,
    lifetime_values,
    lifetime_values_from_orders,
)
from scheduler.tiers import Tier

__all__ = [
    "LifetimeValues",
    "LtvSettings",
    "LtvSettingsLike",
    "PurchaseSummary",
    "Tier",
    "lifetime_values",
    "lifetime_values_from_orders",
    "summarise",
]
