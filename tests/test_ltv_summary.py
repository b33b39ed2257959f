"""Purchase summaries: the CDNOW rules, reproduced row for row, and their edge cases."""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from scheduler.ltv.summary import PurchaseSummary, summarise

CDNOW = Path(__file__).parent / "data" / "cdnow"
CDNOW_AS_OF = date(1997, 9, 30).toordinal()


@cache
def cdnow_orders() -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """CDNOW_sample.txt as (customer id = sample_id, day = date ordinal, dollar value)."""
    raw = np.loadtxt(CDNOW / "CDNOW_sample.txt", dtype=np.int64, usecols=(1, 2))
    amounts = np.loadtxt(CDNOW / "CDNOW_sample.txt", dtype=np.float64, usecols=4)
    stamps = raw[:, 1]
    days = np.array(
        [date(int(s) // 10000, int(s) // 100 % 100, int(s) % 100).toordinal() for s in stamps],
        dtype=np.int64,
    )
    return raw[:, 0], days, amounts


@cache
def cdnow_summary() -> PurchaseSummary:
    ids, days, amounts = cdnow_orders()
    return summarise(ids, days, amounts, as_of_day=CDNOW_AS_OF)


@cache
def cdnow_summary_file() -> NDArray[np.void]:
    """cdnow_customers_summary_with_transactions.csv: ID, x, t_x, T, zbar."""
    table: NDArray[np.void] = np.genfromtxt(
        CDNOW / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True
    )
    return table


def half_up(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rounded to cents, halves up (as the summary files are)."""
    rounded: NDArray[np.float64] = np.floor(values * 100 + 0.5 + 1e-9) / 100
    return rounded


def test_cdnow_summary_reproduces_every_row_of_the_published_summaries() -> None:
    summary = cdnow_summary()
    table = cdnow_summary_file()
    assert len(summary) == 2357
    assert np.array_equal(summary.customer_id, table["ID"].astype(np.int64))
    assert np.array_equal(summary.x, table["x"].astype(np.int64))
    assert np.array_equal(half_up(summary.t_x), table["t_x"])
    assert np.array_equal(half_up(summary.T), table["T"])
    assert np.array_equal(half_up(summary.spend), table["zbar"])
    assert np.array_equal(summary.transactions, summary.x + 1)

    frequency = np.genfromtxt(CDNOW / "cdnow_customers_summary.csv", delimiter=",", names=True)
    assert np.array_equal(summary.x, frequency["frequency"].astype(np.int64))
    assert np.array_equal(half_up(summary.t_x), frequency["recency"])
    assert np.array_equal(half_up(summary.T), frequency["T"])


def test_cdnow_historical_is_every_calibration_purchase() -> None:
    _, days, amounts = cdnow_orders()
    summary = cdnow_summary()
    in_period = days <= CDNOW_AS_OF
    assert summary.historical.sum() == pytest.approx(amounts[in_period].sum(), rel=1e-12)
    first = summary.customer_id == 1  # 1997-01-01 $29.33, 01-18 $29.73, 08-02 $14.96
    assert summary.historical[first][0] == pytest.approx(29.33 + 29.73 + 14.96)
    assert summary.spend[first][0] == pytest.approx((29.73 + 14.96) / 2)


def test_same_day_orders_are_one_transaction_with_their_amounts_added() -> None:
    summary = summarise(
        [7, 7, 7, 7],
        [100, 100, 107, 107],
        [10.0, 5.0, 20.0, 1.0],
        as_of_day=114,
    )
    assert summary.customer_id.tolist() == [7]
    assert summary.x.tolist() == [1]
    assert summary.transactions.tolist() == [2]
    assert summary.t_x.tolist() == [1.0]
    assert summary.T.tolist() == [2.0]
    assert summary.spend.tolist() == [21.0]
    assert summary.historical.tolist() == [36.0]
    assert summary.first_day.tolist() == [100]
    assert summary.last_day.tolist() == [107]


def test_an_order_on_the_as_of_day_counts_and_later_ones_are_ignored() -> None:
    summary = summarise(
        [1, 1, 1, 2, 3],
        [10, 24, 25, 30, 10],
        [10.0, 4.0, 100.0, 50.0, 8.0],
        as_of_day=24,
    )
    # Customer 2 only ordered after the as-of day: no row.
    assert summary.customer_id.tolist() == [1, 3]
    assert summary.x.tolist() == [1, 0]
    assert summary.t_x.tolist() == [2.0, 0.0]
    assert summary.T.tolist() == [2.0, 2.0]
    assert summary.spend.tolist() == [4.0, 0.0]
    assert summary.historical.tolist() == [14.0, 8.0]


def test_a_first_purchase_on_the_as_of_day_gives_T_zero() -> None:
    summary = summarise([5], [50], [9.0], as_of_day=50)
    assert summary.T.tolist() == [0.0]
    assert summary.x.tolist() == [0]


def test_an_order_margin_is_used_where_set_and_amount_times_margin_rate_elsewhere() -> None:
    summary = summarise(
        [1, 1, 1, 1],
        [0, 7, 7, 14],
        [100.0, 50.0, 30.0, 80.0],
        [np.nan, 12.5, np.nan, -4.0],
        as_of_day=14,
        margin_rate=0.25,
    )
    # Day 0: 25.0; day 7: 12.5 + 7.5 = 20.0; day 14: -4.0 (a loss).
    assert summary.historical.tolist() == [41.0]
    assert summary.spend.tolist() == [8.0]
    assert summary.x.tolist() == [2]


def test_customers_and_orders_in_any_order_give_rows_sorted_by_customer() -> None:
    ids = [30, 10, 20, 10, 30, 10]
    days = [5, 9, 1, 2, 5, 2]
    amounts = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    summary = summarise(ids, days, amounts, as_of_day=9)
    assert summary.customer_id.tolist() == [10, 20, 30]
    assert summary.x.tolist() == [1, 0, 0]
    assert summary.historical.tolist() == [12.0, 3.0, 6.0]
    assert summary.first_day.tolist() == [2, 1, 5]
    assert summary.spend.tolist() == [2.0, 0.0, 0.0]
    shuffled = np.random.default_rng(3).permutation(6)
    again = summarise(
        np.array(ids)[shuffled], np.array(days)[shuffled], np.array(amounts)[shuffled], as_of_day=9
    )
    for name in ("customer_id", "x", "t_x", "T", "spend", "historical", "first_day"):
        assert np.array_equal(getattr(again, name), getattr(summary, name)), name


def test_ids_too_far_apart_for_one_sort_key_give_the_same_summary() -> None:
    days = np.array([3, 1, 3, 2, 900], dtype=np.int32)
    amounts = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    near = summarise(np.array([2, 1, 2, 1, 2]), days, amounts, as_of_day=1000)
    far_ids = np.array([2**62, -(2**62), 2**62, -(2**62), 2**62])
    far = summarise(far_ids, days, amounts, as_of_day=1000)
    assert far.customer_id.tolist() == [-(2**62), 2**62]
    for name in ("x", "t_x", "T", "spend", "historical", "first_day", "last_day"):
        assert np.array_equal(getattr(far, name), getattr(near, name)), name


def test_no_order_up_to_the_as_of_day_gives_an_empty_summary() -> None:
    assert len(summarise([], [], [], as_of_day=5)) == 0
    late = summarise([1, 2], [6, 7], [1.0, 1.0], as_of_day=5)
    assert len(late) == 0
    assert late.customer_id.dtype == np.int64


def test_days_must_be_whole_day_numbers() -> None:
    with pytest.raises(ValueError, match="integer day numbers"):
        summarise([1], [1.5], [1.0], as_of_day=5)
    with pytest.raises(ValueError, match="same length"):
        summarise([1, 2], [1], [1.0], as_of_day=5)
