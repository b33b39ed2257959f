"""The BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005, "Counting your customers the
easy way", Marketing Science 24(2)).

While active, a customer buys at a Poisson rate lambda ~ Gamma(r, alpha); after each purchase
they drop out with probability p ~ Beta(a, b). A customer is summarised by (x, t_x, T): repeat
purchases, time of the last one and time observed, in weeks from the first purchase.

- `fit_bgnbd`: maximum likelihood for (r, alpha, a, b), optimised on the log scale with the
  analytic gradient (L-BFGS-B). Identical (x, t_x, T) rows are collapsed into weighted rows
  first (on daily data many customers share a row), which does not change the likelihood.
  The likelihood (their eq. 6) is computed with gammaln/betaln; its two terms are combined as
  a log-sum-exp, log(term1) + log1p(exp(log(term2 / term1))), the second only for x > 0;
  terms that depend on x alone (or T alone) are computed once per distinct value.
- `expected_transactions`: E[Y(t) | x, t_x, T], purchases in the next t weeks (their eq. 10).
  Its Gauss hypergeometric term is evaluated after Euler's transformation,
  ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)
  = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), z = t/(alpha+T+t),
  whose first two parameters do not grow with x: no overflow or lost precision for large x
  or T (the direct form is kept where its parameters are the smaller, after a fit with a
  huge a). The formula divides by a - 1; a within 1e-7 of 1 is moved to 1 + 1e-7.
- `p_alive`: probability that the customer is still active (1 when x = 0: the model lets a
  customer drop out only right after a repeat purchase).
- `discounted_expected_transactions`: the expected purchases of each month of a horizon,
  discounted to today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1, psi

from scheduler.ltv.blas_threads import one_blas_thread

WEEKS_PER_MONTH = 365.25 / 12 / 7
LOG_BOUND = 18.0  # each parameter is kept within exp(-18)..exp(18) (1.5e-8..6.6e7)
GRADIENT_TOLERANCE = 1e-6  # on the mean log-likelihood per customer, log parameters
_A_NUDGE = 1e-7
_CHUNK_ROWS = 1 << 15


@dataclass(frozen=True)
class BgNbdParams:
    """r, alpha: the Gamma purchase rates; a, b: the Beta dropout probabilities."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def log_array(self) -> NDArray[np.float64]:
        return np.log(np.array([self.r, self.alpha, self.a, self.b], dtype=np.float64))

    @classmethod
    def from_log(cls, log_params: ArrayLike) -> BgNbdParams:
        r, alpha, a, b = (float(v) for v in np.exp(np.asarray(log_params, dtype=np.float64)))
        return cls(r=r, alpha=alpha, a=a, b=b)


@dataclass(frozen=True)
class BgNbdFit:
    """A fit: `converged` as `fit_verdict` decides (the optimum reached, finite, no parameter
    stuck at its bound); `message` says why or why not. `log_likelihood` is the weighted sum."""

    params: BgNbdParams
    log_likelihood: float
    converged: bool
    iterations: int
    message: str


class _Rows:
    """The data of a likelihood, split by x = 0 / x > 0 and with per-x weight totals."""

    def __init__(
        self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None
    ) -> None:
        xs, txs, Ts, ws = _columns(x, t_x, T, weights)
        self.total_weight = float(ws.sum())
        self.x_values, inverse = np.unique(xs, return_inverse=True)
        self.x_weights = np.bincount(inverse, weights=ws, minlength=self.x_values.shape[0])
        self.x_values = self.x_values.astype(np.float64)
        # -(r + x) log(alpha + T) summed per distinct T (few on daily data).
        self.T_values, inverse = np.unique(Ts, return_inverse=True)
        self.T_weights = np.bincount(inverse, weights=ws, minlength=self.T_values.shape[0])
        self.T_wx = np.bincount(inverse, weights=ws * xs, minlength=self.T_values.shape[0])
        rep = xs > 0
        self.x1 = xs[rep].astype(np.float64)
        self.tx1 = txs[rep]
        self.T1 = Ts[rep]
        self.w1 = ws[rep]


def log_likelihood_and_gradient(
    log_params: ArrayLike,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """The weighted log-likelihood at exp(log_params) = (r, alpha, a, b), and its gradient with
    respect to the log parameters."""
    return _ll_and_grad(np.asarray(log_params, dtype=np.float64), _Rows(x, t_x, T, weights))


def log_likelihood(
    params: BgNbdParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """The weighted log-likelihood (FHL 2005, eq. 6 summed over customers)."""
    return log_likelihood_and_gradient(params.log_array(), x, t_x, T, weights)[0]


def _ll_and_grad(theta: NDArray[np.float64], d: _Rows) -> tuple[float, NDArray[np.float64]]:
    r, alpha, a, b = np.exp(theta)
    u, W = d.x_values, d.x_weights
    log_alpha = np.log(alpha)
    # Terms that depend on x only, summed over the distinct x values.
    ll = float(
        W @ (gammaln(r + u) + betaln(a, b + u))
        + d.total_weight * (r * log_alpha - gammaln(r) - betaln(a, b))
    )
    psi_r, psi_ab = psi(r), psi(a + b)
    psi_abu = psi(a + b + u)
    g_r = float(W @ psi(r + u)) + d.total_weight * (log_alpha - psi_r)
    g_alpha = d.total_weight * r / alpha
    g_a = d.total_weight * psi_ab - float(W @ psi_abu)
    g_b = float(W @ (psi(b + u) - psi_abu)) + d.total_weight * (psi_ab - psi(b))
    # -(r + x) log(alpha + T), every row.
    log_at = np.log(alpha + d.T_values)
    ll -= r * float(d.T_weights @ log_at) + float(d.T_wx @ log_at)
    g_r -= float(d.T_weights @ log_at)
    inv_at = 1.0 / (alpha + d.T_values)
    g_alpha -= r * float(d.T_weights @ inv_at) + float(d.T_wx @ inv_at)
    # log(1 + exp(D)) for repeat buyers: the chance they dropped out after their last purchase.
    if d.x1.shape[0]:
        rx = r + d.x1
        log_ratio = np.log(alpha + d.T1) - np.log(alpha + d.tx1)
        bx1 = b + d.x1 - 1.0
        D = np.log(a) - np.log(bx1) + rx * log_ratio
        ll += float(d.w1 @ np.logaddexp(0.0, D))
        ws = d.w1 * expit(D)
        g_r += float(ws @ log_ratio)
        g_alpha += float(ws @ (rx * (1.0 / (alpha + d.T1) - 1.0 / (alpha + d.tx1))))
        g_a += float(ws.sum()) / a
        g_b -= float(ws @ (1.0 / bx1))
    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b], dtype=np.float64)
    return ll, grad


def fit_bgnbd(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    collapse: bool = True,
    max_iterations: int = 1000,
    initial: BgNbdParams | None = None,
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD parameters for customers (x, t_x, T), optionally weighted.

    `weights` are row counts (a row standing for that many identical customers). Raises
    ValueError when there is no row with positive weight.
    """
    xs, txs, Ts, ws = _columns(x, t_x, T, weights)
    if collapse:
        xs, txs, Ts, ws = collapse_rows(xs, txs, Ts, ws)
    rows = _Rows(xs, txs, Ts, ws)
    if rows.total_weight <= 0:
        raise ValueError("a BG/NBD fit needs at least one customer")
    scale = rows.total_weight

    def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        ll, grad = _ll_and_grad(theta, rows)
        return -ll / scale, -grad / scale

    if initial is None:
        mean_T = float(rows.T_weights @ rows.T_values) / scale
        initial = BgNbdParams(r=1.0, alpha=max(mean_T, 1.0), a=1.0, b=1.0)
    with one_blas_thread():  # small fits: BLAS threads only get in the way
        result = minimize(
            objective,
            initial.log_array(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
            options={"maxiter": max_iterations, "ftol": 1e-14, "gtol": 1e-9},
        )
    theta = np.asarray(result.x, dtype=np.float64)
    params = BgNbdParams.from_log(theta)
    ll = float(-result.fun * scale)
    converged, message = fit_verdict(result, ll, ("r", "alpha", "a", "b"))
    return BgNbdFit(
        params=params,
        log_likelihood=ll,
        converged=converged,
        iterations=int(result.nit),
        message=message,
    )


def fit_verdict(result: Any, log_likelihood: float, names: tuple[str, ...]) -> tuple[bool, str]:
    """Whether a log-scale L-BFGS-B fit (scipy's result, on the mean log-likelihood) can be
    used, and a message saying why or why not.

    Converged: the optimiser succeeded, or its line search gave up with a gradient below
    GRADIENT_TOLERANCE (the optimum is reached; only rounding is left); every parameter and the
    log-likelihood finite; no parameter at its bound (the data did not identify it).
    """
    theta = np.asarray(result.x, dtype=np.float64)
    gradient = float(np.max(np.abs(result.jac)))
    reason = str(result.message).rstrip(": ") or "no reason given"
    if not (np.all(np.isfinite(theta)) and np.isfinite(log_likelihood)):
        return False, "the fit gave a non-finite parameter or log-likelihood"
    if not result.success and not (
        reason.startswith("ABNORMAL") and gradient <= GRADIENT_TOLERANCE
    ):
        return False, f"the optimiser stopped without converging: {reason}"
    stuck = [name for name, v in zip(names, theta, strict=True) if abs(v) >= LOG_BOUND - 1e-6]
    if stuck:
        return False, f"{', '.join(stuck)} reached the bound exp(+-{LOG_BOUND:g})"
    if not result.success:
        reason = f"the line search stopped with the gradient at {gradient:.1e}"
    return True, f"converged after {int(result.nit)} iterations ({reason})"


def collapse_rows(
    x: NDArray[np.int64],
    t_x: NDArray[np.float64],
    T: NDArray[np.float64],
    weights: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Identical (x, t_x, T) rows merged into one row carrying their total weight."""
    if x.shape[0] == 0:
        return x, t_x, T, weights
    order = np.lexsort((T, t_x, x))
    xs, txs, Ts = x[order], t_x[order], T[order]
    changed = np.zeros(xs.shape[0], dtype=bool)
    changed[0] = True
    for column in (xs, txs, Ts):
        changed[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(changed)
    return xs[starts], txs[starts], Ts[starts], np.add.reduceat(weights[order], starts)


def p_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """P(still active | x, t_x, T) (FHL 2005 and their note on it): 1 when x = 0."""
    xs, txs, Ts, _ = _columns(x, t_x, T, None)
    return _p_alive(params, xs, txs, Ts)


def _p_alive(
    params: BgNbdParams, x: NDArray[np.int64], t_x: NDArray[np.float64], T: NDArray[np.float64]
) -> NDArray[np.float64]:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.ones(x.shape[0], dtype=np.float64)
    rep = x > 0
    xr = x[rep]
    D = (
        np.log(a)
        - np.log(b + xr - 1.0)
        + (r + xr) * (np.log(alpha + T[rep]) - np.log(alpha + t_x[rep]))
    )
    out[rep] = expit(-D)
    return out


def _growth(
    params: BgNbdParams, t: NDArray[np.float64], x: NDArray[np.float64], T: NDArray[np.float64]
) -> NDArray[np.float64]:
    """E[Y(t)] for a customer known to be alive: FHL 2005 eq. 10 without its denominator.

    Broadcasts t against x and T. Of the two equal forms of (1-z)^(r+x) 2F1(r+x, b+x; c; z),
    each element uses the one whose first two parameters have the smaller product (its series
    is the tamer): Euler's (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z) unless r+x and b+x are small
    next to a+b-1-r and a-1 (a fit with a huge a).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < _A_NUDGE:
        a = 1.0 + _A_NUDGE
    xs, Ts, ts = np.broadcast_arrays(x, T, t)
    c = a + b + xs - 1.0
    z = ts / (alpha + Ts + ts)
    term = np.empty(c.shape, dtype=np.float64)
    direct = (r + xs) * (b + xs) < abs((a + b - 1.0 - r) * (a - 1.0))
    euler = ~direct
    term[euler] = np.power(1.0 - z[euler], a - 1.0) * hyp2f1(
        a + b - 1.0 - r, a - 1.0, c[euler], z[euler]
    )
    if direct.any():
        xd = xs[direct]
        term[direct] = np.power(1.0 - z[direct], r + xd) * hyp2f1(
            r + xd, b + xd, c[direct], z[direct]
        )
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf out, for the caller to see
        result: NDArray[np.float64] = c / (a - 1.0) * (1.0 - term)
    return result


def expected_transactions(
    params: BgNbdParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """E[Y(t) | x, t_x, T]: expected purchases in the next t weeks (FHL 2005 eq. 10)."""
    xs, txs, Ts, _ = _columns(x, t_x, T, None)
    if t < 0:
        raise ValueError("t must not be negative")
    growth = _growth(params, np.full(1, float(t)), xs.astype(np.float64), Ts)
    return growth * _p_alive(params, xs, txs, Ts)


def discounted_expected_transactions(
    params: BgNbdParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    horizon_months: int = 36,
    annual_discount_rate: float = 0.10,
) -> NDArray[np.float64]:
    """Sum over months m = 1..M of [E(t_m) - E(t_(m-1))] x (1 + rate)^(-m/12).

    E is `expected_transactions`, t_m = m x (365.25 / 12) / 7 weeks and M = `horizon_months`:
    each month's expected purchases, discounted to today from the month's end. E factors into
    p_alive(x, t_x, T) x growth(x, T, t), so the monthly sums are computed once per distinct
    (x, T) pair.
    """
    xs, txs, Ts, _ = _columns(x, t_x, T, None)
    if horizon_months < 0 or annual_discount_rate <= -1.0:
        raise ValueError("the horizon must not be negative, nor the discount rate -100% or less")
    if horizon_months == 0 or xs.shape[0] == 0:
        return np.zeros(xs.shape[0], dtype=np.float64)
    months = np.arange(1, horizon_months + 1, dtype=np.float64)
    t = months * WEEKS_PER_MONTH
    discount = np.power(1.0 + annual_discount_rate, -months / 12.0)
    # sum_m (E_m - E_(m-1)) d_m = sum_m E_m (d_m - d_(m+1)), with E_0 = 0 and d_(M+1) = 0.
    coefficient = discount - np.append(discount[1:], 0.0)
    keys, inverse = _pairs(xs, Ts)
    sums = np.empty(keys.shape[0], dtype=np.float64)
    for start in range(0, keys.shape[0], _CHUNK_ROWS):
        part = keys[start : start + _CHUNK_ROWS]
        growth = _growth(params, t[None, :], part[:, :1], part[:, 1:])
        sums[start : start + part.shape[0]] = growth @ coefficient
    return sums[inverse] * _p_alive(params, xs, txs, Ts)


def _pairs(
    x: NDArray[np.int64], T: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """The distinct (x, T) rows (as float columns) and each input row's index among them."""
    order = np.lexsort((T, x))
    xs, Ts = x[order], T[order]
    changed = np.zeros(xs.shape[0], dtype=bool)
    changed[0] = True
    changed[1:] = (xs[1:] != xs[:-1]) | (Ts[1:] != Ts[:-1])
    group = np.cumsum(changed) - 1
    inverse = np.empty(x.shape[0], dtype=np.intp)
    inverse[order] = group
    starts = np.flatnonzero(changed)
    keys = np.column_stack((xs[starts].astype(np.float64), Ts[starts]))
    return keys, inverse


def _columns(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The inputs as 1-d arrays of one length, checked: 0 <= x, 0 <= t_x <= T, weights >= 0."""
    xs = np.atleast_1d(np.asarray(x, dtype=np.int64))
    txs = np.atleast_1d(np.asarray(t_x, dtype=np.float64))
    Ts = np.atleast_1d(np.asarray(T, dtype=np.float64))
    n = xs.shape[0]
    ws = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if xs.ndim != 1 or txs.shape != (n,) or Ts.shape != (n,) or ws.shape != (n,):
        raise ValueError("x, t_x, T (and weights) must be 1-d arrays of the same length")
    if n and (xs.min() < 0 or txs.min() < 0 or np.any(txs > Ts) or ws.min() < 0):
        raise ValueError("need x >= 0, 0 <= t_x <= T and weights >= 0")
    return xs, txs, Ts, ws
