"""What a customer is worth through the customers they brought.

A referrer is credited `credit` x (historical + predicted) of each customer they referred
directly, that customer's own value only: never the referred customer's own referral credit.
In a chain A -> B -> C, A gets credit x own(B) and B gets credit x own(C): nothing is counted
twice. Each customer is referred at most once and never by themselves (ValueError otherwise).
A referred customer missing from `customer_ids` (no orders, say) contributes 0; a referrer
missing from it gets nothing reported, since the result covers `customer_ids` only: pass every
customer id that should get a value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def referral_values(
    customer_ids: ArrayLike,
    own_values: ArrayLike,
    referrer_ids: ArrayLike,
    referred_ids: ArrayLike,
    *,
    credit: float = 0.5,
) -> NDArray[np.float64]:
    """Referral value of each of `customer_ids` (distinct, any order), aligned with them.

    `own_values[i]` is customer_ids[i]'s historical + predicted value; a referral is the pair
    (referrer_ids[k], referred_ids[k]).
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    own = np.asarray(own_values, dtype=np.float64)
    referrers = np.asarray(referrer_ids, dtype=np.int64)
    referred = np.asarray(referred_ids, dtype=np.int64)
    if ids.ndim != 1 or own.shape != ids.shape:
        raise ValueError("customer_ids and own_values must be 1-d arrays of the same length")
    if referrers.ndim != 1 or referred.shape != referrers.shape:
        raise ValueError("referrer_ids and referred_ids must be 1-d arrays of the same length")
    if np.any(referrers == referred):
        raise ValueError("a customer cannot refer themselves")
    if np.unique(referred).shape[0] != referred.shape[0]:
        raise ValueError("a customer is referred at most once")
    n = ids.shape[0]
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if n > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        raise ValueError("customer_ids must be distinct")
    if n == 0:
        return np.zeros(0, dtype=np.float64)

    referred_at, referred_known = _positions(sorted_ids, referred)
    gained = np.where(referred_known, own[order][referred_at], 0.0) * credit
    referrer_at, referrer_known = _positions(sorted_ids, referrers)
    credited = np.bincount(
        referrer_at[referrer_known], weights=gained[referrer_known], minlength=n
    ).astype(np.float64)
    result = np.empty(n, dtype=np.float64)
    result[order] = credited
    return result


def _positions(
    sorted_ids: NDArray[np.int64], wanted: NDArray[np.int64]
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Index of each wanted id in sorted_ids (clipped), and whether it is there."""
    at = np.searchsorted(sorted_ids, wanted)
    at = np.minimum(at, sorted_ids.shape[0] - 1)
    return at, sorted_ids[at] == wanted
