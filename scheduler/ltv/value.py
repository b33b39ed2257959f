"""Each customer's lifetime value: historical + predicted + referral, the model and the tiers.

Model choice (`model` setting):
- "simple": the owner's formula for small bases, each part blended with the business's
  average (`scheduler.ltv.blend`); its params are the business's figures and the weights.
- "auto": BG/NBD (`scheduler.ltv.bgnbd`) when the history supports a fit: at least
  MIN_CUSTOMERS customers with purchases, at least MIN_REPEAT_CUSTOMERS of them with a repeat
  purchase, a fit that converged with finite parameters off their bounds, and a finite
  prediction for every customer. Otherwise simple.
- "bgnbd": BG/NBD without the size thresholds; when it cannot be used (no repeat buyer, a fit
  that did not converge, a prediction that is not finite) the simple model is used and the
  reason says so.

With BG/NBD, predicted = discounted expected purchases over the horizon x expected margin per
purchase. That margin comes from Gamma-Gamma (`scheduler.ltv.gamma_gamma`), fitted on the
repeat buyers with a positive mean repeat margin, when there are at least MIN_SPEND_CUSTOMERS
of them, the fit converged and q > 1 (a finite mean). Otherwise BG/NBD still predicts the
purchases (spend does not change how many there will be) and each customer's own average
transaction margin (historical / transactions) prices them; the reason says why.

p_alive is BG/NBD's probability that the customer is still active; NaN with the simple model
(it has no such notion) and for customers without orders.

Tiers: `vip` for the floor(n x vip_share) customers with the highest total (at least 1 when
n > 0 and vip_share > 0; n counts every customer in the result, those without orders too;
equal totals are ranked by customer id, smallest first; a total of 0 or less is never vip);
among the others `new` for customers with at most one transaction (no repeat purchase), else
`regular`.

Every result carries `reason`: which model was used, and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scheduler.ltv.bgnbd import BgNbdFit, discounted_expected_transactions, fit_bgnbd, p_alive
from scheduler.ltv.blend import PRIOR_ORDERS, PRIOR_YEARS, blended_parts
from scheduler.ltv.gamma_gamma import GammaGammaFit, expected_spend, fit_gamma_gamma
from scheduler.ltv.referral import referral_values
from scheduler.ltv.summary import PurchaseSummary, summarise
from scheduler.tiers import Tier

MIN_CUSTOMERS = 100
MIN_REPEAT_CUSTOMERS = 20
MIN_SPEND_CUSTOMERS = 20
MODELS = ("auto", "bgnbd", "simple")

ModelKind = Literal["bgnbd", "simple"]


class LtvSettingsLike(Protocol):
    """What the computation reads from settings (the config section, or `LtvSettings`)."""

    @property
    def margin_rate(self) -> float: ...
    @property
    def horizon_months(self) -> int: ...
    @property
    def annual_discount_rate(self) -> float: ...
    @property
    def model(self) -> str: ...
    @property
    def expected_lifetime_years(self) -> float: ...
    @property
    def referral_credit(self) -> float: ...
    @property
    def vip_share(self) -> float: ...
    @property
    def prior_orders(self) -> float: ...
    @property
    def prior_years(self) -> float: ...


@dataclass(frozen=True)
class LtvSettings:
    """Plain settings with the defaults."""

    margin_rate: float = 1.0
    horizon_months: int = 36
    annual_discount_rate: float = 0.10
    model: str = "auto"
    expected_lifetime_years: float = 5.0
    referral_credit: float = 0.5
    vip_share: float = 0.10
    prior_orders: float = PRIOR_ORDERS
    prior_years: float = PRIOR_YEARS


@dataclass(frozen=True)
class LifetimeValues:
    """The model used and each customer's values, one row per customer sorted by id.

    params: BG/NBD's r, alpha, a, b (empty with the simple model); spend_params: Gamma-Gamma's
    p, q, gamma (empty when it was not used); log_likelihood: BG/NBD's (None with simple).
    With the simple model, params are the blend's business figures and weights
    (`BlendParts.params`).
    tier: `Tier` codes (int8). transactions: transaction days up to the as-of day.
    """

    model: ModelKind
    reason: str
    params: dict[str, float]
    spend_params: dict[str, float]
    log_likelihood: float | None
    customer_id: NDArray[np.int64]
    transactions: NDArray[np.int64]
    historical: NDArray[np.float64]
    predicted: NDArray[np.float64]
    referral: NDArray[np.float64]
    total: NDArray[np.float64]
    p_alive: NDArray[np.float64]
    tier: NDArray[np.int8]

    def tier_labels(self) -> NDArray[np.str_]:
        """The tiers as names ("regular", "new", "vip")."""
        labels = np.array([t.label for t in Tier])
        result: NDArray[np.str_] = labels[self.tier]
        return result


@dataclass(frozen=True)
class Prediction:
    """The chosen model's prediction for each summary row (see `predict`)."""

    model: ModelKind
    reason: str
    predicted: NDArray[np.float64]
    p_alive: NDArray[np.float64]
    params: dict[str, float] = field(default_factory=dict)
    spend_params: dict[str, float] = field(default_factory=dict)
    log_likelihood: float | None = None


def lifetime_values_from_orders(
    customer_ids: ArrayLike,
    days: ArrayLike,
    amounts: ArrayLike,
    margins: ArrayLike | None = None,
    *,
    as_of_day: int,
    settings: LtvSettingsLike | None = None,
    all_customer_ids: ArrayLike | None = None,
    referrer_ids: ArrayLike | None = None,
    referred_ids: ArrayLike | None = None,
) -> LifetimeValues:
    """`summarise` the orders as of `as_of_day` (with the settings' margin_rate), then
    `lifetime_values`."""
    settings = settings or LtvSettings()
    summary = summarise(
        customer_ids, days, amounts, margins, as_of_day=as_of_day, margin_rate=settings.margin_rate
    )
    return lifetime_values(
        summary,
        settings,
        customer_ids=all_customer_ids,
        referrer_ids=referrer_ids,
        referred_ids=referred_ids,
    )


def lifetime_values(
    summary: PurchaseSummary,
    settings: LtvSettingsLike | None = None,
    *,
    customer_ids: ArrayLike | None = None,
    referrer_ids: ArrayLike | None = None,
    referred_ids: ArrayLike | None = None,
) -> LifetimeValues:
    """Values of the customers of `summary`, of `customer_ids` and of the referrers.

    Customers without orders (in `customer_ids` or referrers only) have historical and
    predicted 0, p_alive NaN, and may have a referral value. The summary's margins already
    carry margin_rate; the settings' margin_rate is not applied again.
    """
    settings = settings or LtvSettings()
    _check(settings)
    prediction = predict(summary, settings)
    own_value = summary.historical + prediction.predicted

    referrers = _ids(referrer_ids)
    referred = _ids(referred_ids)
    extra = np.union1d(_ids(customer_ids), referrers)
    if extra.shape[0] == 0 or np.isin(extra, summary.customer_id).all():
        ids = summary.customer_id
        at = np.arange(ids.shape[0])
    else:
        ids = np.union1d(summary.customer_id, extra)
        at = np.searchsorted(ids, summary.customer_id)

    n = ids.shape[0]
    transactions = np.zeros(n, dtype=np.int64)
    transactions[at] = summary.transactions
    historical = _spread(n, at, summary.historical, 0.0)
    predicted = _spread(n, at, prediction.predicted, 0.0)
    alive = _spread(n, at, prediction.p_alive, math.nan)
    if referrers.shape[0]:
        referral = referral_values(
            ids,
            _spread(n, at, own_value, 0.0),
            referrers,
            referred,
            credit=settings.referral_credit,
        )
    else:
        referral = np.zeros(n, dtype=np.float64)
    total = historical + predicted + referral
    return LifetimeValues(
        model=prediction.model,
        reason=prediction.reason,
        params=prediction.params,
        spend_params=prediction.spend_params,
        log_likelihood=prediction.log_likelihood,
        customer_id=ids,
        transactions=transactions,
        historical=historical,
        predicted=predicted,
        referral=referral,
        total=total,
        p_alive=alive,
        tier=assign_tiers(ids, total, transactions, vip_share=settings.vip_share),
    )


def predict(summary: PurchaseSummary, settings: LtvSettingsLike) -> Prediction:
    """Choose the model (see the module) and predict each summary row's discounted margin."""
    repeat = int(np.count_nonzero(summary.x))
    unfit = _unfit(settings.model, len(summary), repeat)
    if unfit is not None:
        return _simple(summary, settings, unfit)
    refused = "simple: " if settings.model == "auto" else _FORCED_REFUSED
    fit = fit_bgnbd(summary.x, summary.t_x, summary.T)
    if not fit.converged:
        return _simple(
            summary, settings, f"{refused}the BG/NBD fit did not converge ({fit.message})"
        )
    prediction = _bgnbd(summary, settings, fit, repeat)
    broken = int(np.count_nonzero(~np.isfinite(prediction.predicted)))
    if broken:
        return _simple(
            summary,
            settings,
            f"{refused}the BG/NBD fit (log-likelihood {fit.log_likelihood:.2f}) gave no finite "
            f"prediction for {broken:,} customers",
        )
    return prediction


_FORCED_REFUSED = "simple: bgnbd was requested but cannot be used: "


def _unfit(model: str, customers: int, repeat: int) -> str | None:
    """Why BG/NBD is not even tried (the simple model's reason), or None to try it."""
    if model == "simple":
        return 'simple: chosen in the settings (model = "simple")'
    if model == "auto":
        if customers < MIN_CUSTOMERS:
            return (
                f"simple: only {customers:,} customer{'' if customers == 1 else 's'} "
                f"with purchases (need {MIN_CUSTOMERS})"
            )
        if repeat < MIN_REPEAT_CUSTOMERS:
            return (
                f"simple: only {repeat:,} customer{'' if repeat == 1 else 's'} "
                f"with repeat purchases (need {MIN_REPEAT_CUSTOMERS})"
            )
    elif repeat == 0:
        return (
            f"{_FORCED_REFUSED}none of the {customers:,} customers has a repeat purchase, "
            "so the BG/NBD model cannot be fitted"
        )
    return None


def _bgnbd(
    summary: PurchaseSummary, settings: LtvSettingsLike, fit: BgNbdFit, repeat: int
) -> Prediction:
    purchases = discounted_expected_transactions(
        fit.params,
        summary.x,
        summary.t_x,
        summary.T,
        horizon_months=settings.horizon_months,
        annual_discount_rate=settings.annual_discount_rate,
    )
    spend_fit, spend_problem = _spend_fit(summary)
    if spend_fit is not None:
        spend = expected_spend(spend_fit.params, summary.x, summary.spend)
        gg = spend_fit.params
        spend_note = f"spend: Gamma-Gamma (p = {gg.p:.3g}, q = {gg.q:.3g}, gamma = {gg.gamma:.4g})"
        spend_params = gg.as_dict()
    else:
        spend = summary.historical / summary.transactions
        spend_note = f"spend: each customer's own average margin, since {spend_problem}"
        spend_params = {}
    reason = (
        f"bgnbd: {len(summary):,} customers, {repeat:,} with repeat purchases; "
        f"fit converged (log-likelihood {fit.log_likelihood:.2f}); {spend_note}"
    )
    return Prediction(
        model="bgnbd",
        reason=reason,
        predicted=purchases * spend,
        p_alive=p_alive(fit.params, summary.x, summary.t_x, summary.T),
        params=fit.params.as_dict(),
        spend_params=spend_params,
        log_likelihood=fit.log_likelihood,
    )


def _spend_fit(summary: PurchaseSummary) -> tuple[GammaGammaFit | None, str]:
    """The Gamma-Gamma fit when it can be used, else None and why not."""
    buyers = int(np.count_nonzero((summary.x > 0) & (summary.spend > 0)))
    if buyers < MIN_SPEND_CUSTOMERS:
        return None, (
            f"only {buyers:,} repeat buyers have a positive spend "
            f"(Gamma-Gamma needs {MIN_SPEND_CUSTOMERS})"
        )
    fit = fit_gamma_gamma(summary.x, summary.spend)
    if not fit.converged:
        return None, f"the Gamma-Gamma fit did not converge ({fit.message})"
    if not fit.params.q > 1.0:
        return None, f"the Gamma-Gamma fit has q = {fit.params.q:.3g} <= 1 (no finite mean spend)"
    return fit, ""


def _simple(summary: PurchaseSummary, settings: LtvSettingsLike, reason: str) -> Prediction:
    parts = blended_parts(
        summary,
        prior_orders=settings.prior_orders,
        prior_years=settings.prior_years,
        expected_lifetime_years=settings.expected_lifetime_years,
        horizon_months=settings.horizon_months,
        annual_discount_rate=settings.annual_discount_rate,
    )
    return Prediction(
        model="simple",
        reason=reason,
        predicted=parts.predicted,
        p_alive=np.full(len(summary), math.nan),
        params=parts.params(),
    )


def assign_tiers(
    customer_id: NDArray[np.int64],
    total: NDArray[np.float64],
    transactions: NDArray[np.int64],
    *,
    vip_share: float,
) -> NDArray[np.int8]:
    """Tier codes (see the module): vip = the top floor(n x vip_share) by total (at least one
    when n > 0 and vip_share > 0), ties by customer id, and only customers worth more than 0
    (a store without value has no vip); then new (<= 1 transaction) or regular."""
    n = customer_id.shape[0]
    tiers = np.where(transactions <= 1, Tier.NEW, Tier.REGULAR).astype(np.int8)
    vips = min(n, max(math.floor(n * vip_share), 1)) if n > 0 and vip_share > 0 else 0
    if vips:
        ranking = np.nan_to_num(total, nan=-np.inf)
        top = np.lexsort((customer_id, -ranking))[:vips]
        tiers[top[ranking[top] > 0]] = Tier.VIP
    return tiers


def _check(settings: LtvSettingsLike) -> None:
    if settings.model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {settings.model!r}")
    if not 0.0 <= settings.vip_share <= 1.0:
        raise ValueError("vip_share must be between 0 and 1")
    if settings.referral_credit < 0:
        raise ValueError("referral_credit must not be negative")
    if not (settings.prior_orders > 0 and settings.prior_years > 0):
        raise ValueError("prior_orders and prior_years must be above 0")


def _ids(values: ArrayLike | None) -> NDArray[np.int64]:
    if values is None:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(values, dtype=np.int64).ravel()


def _spread(
    n: int, at: NDArray[np.intp], values: NDArray[np.float64], fill: float
) -> NDArray[np.float64]:
    """values placed at rows `at` of an array of n rows, `fill` elsewhere."""
    if at.shape[0] == n:
        return values
    out = np.full(n, fill, dtype=np.float64)
    out[at] = values
    return out
