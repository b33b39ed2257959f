"""Lifetime values: referral credit, tiers, and the choice of model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from scheduler.ltv import bgnbd, value
from scheduler.ltv.bgnbd import BgNbdFit, discounted_expected_transactions, fit_bgnbd
from scheduler.ltv.gamma_gamma import GammaGammaParams, expected_spend
from scheduler.ltv.referral import referral_values
from scheduler.ltv.summary import PurchaseSummary, summarise
from scheduler.ltv.value import (
    MIN_CUSTOMERS,
    MIN_REPEAT_CUSTOMERS,
    LtvSettings,
    assign_tiers,
    lifetime_values,
    lifetime_values_from_orders,
)
from scheduler.tiers import Tier
from tests.test_ltv_summary import CDNOW_AS_OF, cdnow_orders, cdnow_summary

AS_OF = 10_000


# --- referral credit ------------------------------------------------------------------------


def test_referral_credit_in_a_chain_counts_each_customers_own_value_once() -> None:
    # A (1) referred B (2), who referred C (3); D (4) referred E (5), who has no orders and so
    # is not among the customers; A also referred F (6).
    ids = np.array([3, 1, 6, 2, 4])
    own = np.array([10.0, 100.0, 7.0, 40.0, 55.0])
    credit = referral_values(ids, own, [1, 2, 4, 1], [2, 3, 5, 6], credit=0.5)
    by_id = dict(zip(ids.tolist(), credit.tolist(), strict=True))
    # A: half of B's own 40 (not B's credit for C) + half of F's 7; B: half of C's 10.
    assert by_id == {1: 23.5, 2: 5.0, 3: 0.0, 4: 0.0, 6: 0.0}


def test_referrals_must_name_each_referred_customer_once_and_not_themselves() -> None:
    ids, own = np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="referred at most once"):
        referral_values(ids, own, [1, 2], [3, 3])
    with pytest.raises(ValueError, match="refer themselves"):
        referral_values(ids, own, [2], [2])
    with pytest.raises(ValueError, match="distinct"):
        referral_values([1, 1], [1.0, 1.0], [1], [2])


def test_a_customer_without_orders_gets_a_row_and_credit_for_their_referrals() -> None:
    # Customer 9 never ordered but referred 1 and 2; customer 8 is listed and did nothing.
    summary = summarise(
        [1, 1, 2, 2], [AS_OF - 400, AS_OF - 30, AS_OF - 10, AS_OF], [20.0] * 4, as_of_day=AS_OF
    )
    result = lifetime_values(
        summary,
        LtvSettings(model="simple", referral_credit=0.25),
        customer_ids=[8],
        referrer_ids=[9, 9, 1],
        referred_ids=[1, 2, 8],
    )
    assert result.customer_id.tolist() == [1, 2, 8, 9]
    own = result.historical + result.predicted
    assert result.historical.tolist() == [40.0, 40.0, 0.0, 0.0]
    assert own[2] == own[3] == 0.0
    assert result.referral == pytest.approx([0.0, 0.0, 0.0, 0.25 * (own[0] + own[1])])
    assert result.total == pytest.approx(own + result.referral)
    assert result.transactions.tolist() == [2, 2, 0, 0]
    assert np.all(np.isnan(result.p_alive))


# --- tiers ----------------------------------------------------------------------------------


def test_tiers_vip_share_rounds_down_but_keeps_one_then_new_and_regular() -> None:
    n = 25
    ids = np.arange(1, n + 1, dtype=np.int64)
    total = np.arange(n, dtype=np.float64)  # customer 25 has the most
    transactions = np.where(ids % 2 == 0, 1, 3).astype(np.int64)
    tiers = assign_tiers(ids, total, transactions, vip_share=0.10)  # floor(2.5) = 2
    assert ids[tiers == Tier.VIP].tolist() == [24, 25]
    rest = tiers != Tier.VIP
    assert np.all(tiers[rest & (transactions <= 1)] == Tier.NEW)
    assert np.all(tiers[rest & (transactions > 1)] == Tier.REGULAR)
    few = assign_tiers(ids[:5], total[:5], transactions[:5], vip_share=0.10)  # floor(0.5) -> 1
    assert ids[:5][few == Tier.VIP].tolist() == [5]
    assert Tier.VIP not in assign_tiers(ids, total, transactions, vip_share=0.0)
    assert assign_tiers(ids[:0], total[:0], transactions[:0], vip_share=0.1).shape == (0,)


def test_tiers_equal_totals_at_the_boundary_go_to_the_smaller_id() -> None:
    ids = np.array([4, 3, 2, 1], dtype=np.int64)
    tiers = assign_tiers(ids, np.array([5.0, 9.0, 9.0, 1.0]), np.full(4, 0), vip_share=0.25)
    assert tiers.tolist() == [Tier.NEW, Tier.NEW, Tier.VIP, Tier.NEW]
    assert [Tier(code).label for code in tiers] == ["new", "new", "vip", "new"]


def test_a_store_without_value_has_no_vip() -> None:
    ids = np.array([1, 2, 3], dtype=np.int64)
    tiers = assign_tiers(ids, np.zeros(3), np.array([0, 1, 2]), vip_share=0.5)
    assert [Tier(code).label for code in tiers] == ["new", "new", "regular"]


# --- the model choice -----------------------------------------------------------------------


def population(customers: int, repeaters: int) -> PurchaseSummary:
    """`customers` with a first purchase 300 days ago, the first `repeaters` with 2 more."""
    ids = np.arange(1, customers + 1)
    days = np.full(customers, AS_OF - 300)
    reps = np.repeat(ids[:repeaters], 2)
    rep_days = np.tile([AS_OF - 200, AS_OF - 20], repeaters) - (reps % 50)
    return summarise(
        np.r_[ids, reps],
        np.r_[days, rep_days],
        np.full(customers + reps.shape[0], 25.0),
        as_of_day=AS_OF,
    )


def test_auto_needs_enough_customers() -> None:
    result = lifetime_values(population(MIN_CUSTOMERS - 1, 50))
    assert result.model == "simple"
    assert result.reason == "simple: only 99 customers with purchases (need 100)"
    assert set(result.params) == {
        "business_order",
        "business_per_year",
        "prior_orders",
        "prior_years",
        "expected_lifetime_years",
    }
    assert result.params["business_order"] == 25.0
    assert result.log_likelihood is None


def test_auto_needs_enough_repeat_buyers() -> None:
    result = lifetime_values(population(150, MIN_REPEAT_CUSTOMERS - 8))
    assert result.model == "simple"
    assert result.reason == "simple: only 12 customers with repeat purchases (need 20)"


def stopped_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """The BG/NBD fit stops after one iteration: a real fit that has not converged."""

    def one_iteration(*args: NDArray[np.generic], **kwargs: object) -> BgNbdFit:
        return fit_bgnbd(*args, max_iterations=1)

    monkeypatch.setattr(value, "fit_bgnbd", one_iteration)


def test_auto_falls_back_when_the_fit_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped_early(monkeypatch)
    result = lifetime_values(cdnow_summary())
    assert result.model == "simple"
    assert result.reason.startswith(
        "simple: the BG/NBD fit did not converge (the optimiser stopped without converging: "
    )


def test_forced_bgnbd_without_repeat_buyers_falls_back_and_says_so() -> None:
    result = lifetime_values(population(30, 0), LtvSettings(model="bgnbd"))
    assert result.model == "simple"
    assert result.reason == (
        "simple: bgnbd was requested but cannot be used: none of the 30 customers has a repeat "
        "purchase, so the BG/NBD model cannot be fitted"
    )


def test_forced_bgnbd_whose_fit_fails_falls_back_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped_early(monkeypatch)
    result = lifetime_values(cdnow_summary(), LtvSettings(model="bgnbd"))
    assert result.model == "simple"
    assert result.reason.startswith(
        "simple: bgnbd was requested but cannot be used: the BG/NBD fit did not converge"
    )


def test_forced_bgnbd_ignores_the_size_thresholds() -> None:
    summary = cdnow_summary()
    columns = [f.name for f in dataclasses.fields(summary) if f.name != "as_of_day"]
    small = dataclasses.replace(summary, **{name: getattr(summary, name)[:40] for name in columns})
    assert lifetime_values(small).model == "simple"
    result = lifetime_values(small, LtvSettings(model="bgnbd"))
    assert result.model == "bgnbd"
    assert result.reason.startswith("bgnbd: 40 customers, 15 with repeat purchases; fit converged")
    assert result.reason.endswith(
        "spend: each customer's own average margin, since only 15 repeat buyers have a positive "
        "spend (Gamma-Gamma needs 20)"
    )
    assert result.spend_params == {}
    assert np.all(np.isfinite(result.predicted))


def test_simple_when_chosen_in_the_settings() -> None:
    result = lifetime_values(cdnow_summary(), LtvSettings(model="simple"))
    assert result.model == "simple"
    assert result.reason == 'simple: chosen in the settings (model = "simple")'
    with pytest.raises(ValueError, match="model must be one of"):
        lifetime_values(cdnow_summary(), LtvSettings(model="magic"))


def test_bgnbd_with_a_spend_model_that_has_no_finite_mean_uses_own_average_margin() -> None:
    summary = cdnow_summary()
    rng = np.random.default_rng(0)  # Gamma-Gamma spend with q = 0.7
    nu = rng.gamma(0.7, 1 / 10.0, len(summary))
    x = np.maximum(summary.x, 1)
    spend = np.where(summary.x > 0, rng.gamma(4.0 * x, 1 / (nu * x)), 0.0)
    heavy = dataclasses.replace(summary, spend=spend)
    result = lifetime_values(heavy)
    assert result.model == "bgnbd"
    assert result.reason.endswith(
        "spend: each customer's own average margin, since the Gamma-Gamma fit has q = 0.776 <= 1 "
        "(no finite mean spend)"
    )
    purchases = discounted_expected_transactions(
        bgnbd.BgNbdParams(**result.params), summary.x, summary.t_x, summary.T
    )
    own_average = summary.historical / summary.transactions
    assert result.predicted == pytest.approx(purchases * own_average, rel=1e-9)


# --- CDNOW end to end -----------------------------------------------------------------------


def test_cdnow_end_to_end_from_the_raw_purchases() -> None:
    ids, days, amounts = cdnow_orders()
    result = lifetime_values_from_orders(ids, days, amounts, as_of_day=CDNOW_AS_OF)
    assert result.model == "bgnbd"
    assert result.reason == (
        "bgnbd: 2,357 customers, 946 with repeat purchases; fit converged (log-likelihood "
        "-9582.43); spend: Gamma-Gamma (p = 6.25, q = 3.74, gamma = 15.44)"
    )
    assert result.params["r"] == pytest.approx(0.243, rel=0.01)
    assert result.spend_params["q"] == pytest.approx(3.74, rel=0.01)
    assert result.log_likelihood == pytest.approx(-9582.4, abs=0.5)

    summary = cdnow_summary()
    params = bgnbd.BgNbdParams(**result.params)
    spend = expected_spend(GammaGammaParams(**result.spend_params), summary.x, summary.spend)
    purchases = discounted_expected_transactions(params, summary.x, summary.t_x, summary.T)
    assert result.predicted == pytest.approx(purchases * spend, rel=1e-12)
    assert result.total == pytest.approx(result.historical + result.predicted)
    assert np.all(result.referral == 0.0)
    assert np.all((result.p_alive > 0) & (result.p_alive <= 1))
    assert np.all(result.p_alive[summary.x == 0] == 1.0)
    counts = np.bincount(result.tier, minlength=3)
    assert counts[Tier.VIP] == math.floor(2357 * 0.10)
    vip_floor = result.total[result.tier == Tier.VIP].min()
    assert np.all(result.total[result.tier != Tier.VIP] <= vip_floor)
    assert result.tier_labels()[result.tier == Tier.NEW].tolist() == ["new"] * counts[Tier.NEW]
