"""Each customer's purchase history reduced to what the lifetime-value models read.

Rules (those of the CDNOW summaries, Fader, Hardie & Lee 2005):
- orders placed on the same local day are one transaction; their amounts and margins are added;
- orders after the as-of day are ignored; an order placed on the as-of day counts;
- `x` is the number of repeat transactions (transaction days after the first one);
- `t_x` is the time from the first transaction to the last one, `T` from the first transaction
  to the as-of day, both in weeks (days / 7);
- an order's margin is its own margin when it has one, else its amount x `margin_rate`;
- `spend` is the mean margin of the repeat transactions (0 when `x` is 0): the Gamma-Gamma model
  is fitted on margin, not revenue, because margin is the value predicted. With `margin_rate`
  1.0 and no order margins (CDNOW) it is the mean repeat amount, the CDNOW `zbar`;
- `historical` is the margin of every transaction up to the as-of day, the first one included.

Everything is vectorised (one sort of the orders, then `np.add.reduceat` over the runs): there
is no Python loop per customer or per order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class PurchaseSummary:
    """One row per customer with at least one order up to the as-of day, sorted by id.

    customer_id: the customer's id.
    x: repeat transactions (transaction days after the first).
    t_x: weeks from the first to the last transaction (0 when `x` is 0).
    T: weeks from the first transaction to the as-of day.
    spend: mean margin of the repeat transactions (0 when `x` is 0); Gamma-Gamma's `zbar`.
    transactions: transaction days (`x + 1`).
    first_day, last_day: day numbers of the first and the last transaction.
    historical: margin of every transaction up to the as-of day.
    as_of_day: the day number the summary was taken on.
    """

    customer_id: NDArray[np.int64]
    x: NDArray[np.int64]
    t_x: NDArray[np.float64]
    T: NDArray[np.float64]
    spend: NDArray[np.float64]
    transactions: NDArray[np.int64]
    first_day: NDArray[np.int64]
    last_day: NDArray[np.int64]
    historical: NDArray[np.float64]
    as_of_day: int

    def __len__(self) -> int:
        return int(self.customer_id.shape[0])


def summarise(
    customer_ids: ArrayLike,
    days: ArrayLike,
    amounts: ArrayLike,
    margins: ArrayLike | None = None,
    *,
    as_of_day: int,
    margin_rate: float = 1.0,
) -> PurchaseSummary:
    """Summarise orders (one entry per order, in any order) as of `as_of_day`.

    `days` are local calendar day numbers (`date.toordinal()`, days since an epoch: any integer
    count of days); `margins` holds NaN where an order has no margin of its own (None: no order
    has one). Customers without an order up to the as-of day get no row.
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    day = np.asarray(days)
    amount = np.asarray(amounts, dtype=np.float64)
    n = ids.shape[0]
    if day.shape != (n,) or amount.shape != (n,) or ids.ndim != 1:
        raise ValueError("customer_ids, days and amounts must be 1-d arrays of the same length")
    if n == 0:
        return _empty(as_of_day)
    if not np.issubdtype(day.dtype, np.integer):
        raise ValueError(f"days must be integer day numbers, not {day.dtype}")
    late = day > as_of_day
    kept = n - int(np.count_nonzero(late))
    if kept == 0:
        return _empty(as_of_day)
    margin = _order_margins(amount, margins, margin_rate)
    del amount

    # Transactions: runs of equal (customer, day) once the orders are sorted by both; the
    # orders after the as-of day are sorted last and cut off.
    order, t_start = _transactions(ids, day, late, kept)
    del late
    tx_margin = np.add.reduceat(margin[order], t_start)
    del margin
    first_order = order[t_start]
    del order, t_start
    tx_id = ids[first_order]
    tx_day = day[first_order].astype(np.int64)
    del first_order

    # Customers: runs of equal id among the transactions.
    c_start = _run_starts(tx_id)
    c_end = np.append(c_start[1:], tx_id.shape[0])
    transactions = (c_end - c_start).astype(np.int64)
    x = transactions - 1
    first_day = tx_day[c_start]
    last_day = tx_day[c_end - 1]
    historical = np.add.reduceat(tx_margin, c_start)
    tx_margin[c_start] = 0.0  # the first transaction is not a repeat one
    repeat_margin = np.add.reduceat(tx_margin, c_start)
    spend = np.divide(repeat_margin, x, out=np.zeros_like(repeat_margin), where=x > 0)
    return PurchaseSummary(
        customer_id=tx_id[c_start],
        x=x,
        t_x=(last_day - first_day) / DAYS_PER_WEEK,
        T=(as_of_day - first_day) / DAYS_PER_WEEK,
        spend=spend,
        transactions=transactions,
        first_day=first_day,
        last_day=last_day,
        historical=historical,
        as_of_day=int(as_of_day),
    )


def _order_margins(
    amount: NDArray[np.float64], margins: ArrayLike | None, margin_rate: float
) -> NDArray[np.float64]:
    """Each order's margin: its own where it has one, else amount x margin_rate (a new array)."""
    fallback = amount * margin_rate
    if margins is None:
        return fallback
    own = np.asarray(margins, dtype=np.float64)
    if own.shape != amount.shape:
        raise ValueError("margins must have one entry per order")
    np.copyto(fallback, own, where=~np.isnan(own))
    return fallback


def _transactions(
    ids: NDArray[np.int64], day: NDArray[np.integer], late: NDArray[np.bool_], kept: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The orders up to the as-of day sorted by (customer id, day), as a permutation (ties in
    any order), and where each run of one customer's day starts in it.

    Sorting one int64 key, (id - min id) x day span + (day - min day), is much faster than
    `np.lexsort` on two columns and needs fewer copies; `np.lexsort` it is when the key could
    overflow. Orders after the as-of day get the largest key and are cut off after the sort.
    """
    id_min, id_max = int(ids.min()), int(ids.max())
    day_min, day_max = int(day.min()), int(day.max())
    span = day_max - day_min + 1
    if (id_max - id_min + 1) * span >= 2**62:
        order = np.lexsort((day, ids, late))[:kept]
        return order, _run_starts(ids[order], day[order])
    key = ids - id_min
    key *= span
    key += day
    key -= day_min
    if kept < key.shape[0]:
        key[late] = np.iinfo(np.int64).max
    order = np.argsort(key)[:kept]
    sorted_key = key[order]
    del key
    return order, _run_starts(sorted_key)


def _run_starts(*sorted_columns: NDArray[np.integer]) -> NDArray[np.intp]:
    """Indexes where a run of equal rows starts, given columns sorted together."""
    n = sorted_columns[0].shape[0]
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for column in sorted_columns:
        changed[1:] |= column[1:] != column[:-1]
    return np.flatnonzero(changed)


def _empty(as_of_day: int) -> PurchaseSummary:
    no_int = np.zeros(0, dtype=np.int64)
    no_float = np.zeros(0, dtype=np.float64)
    return PurchaseSummary(
        customer_id=no_int,
        x=no_int,
        t_x=no_float,
        T=no_float,
        spend=no_float,
        transactions=no_int,
        first_day=no_int,
        last_day=no_int,
        historical=no_float,
        as_of_day=int(as_of_day),
    )
