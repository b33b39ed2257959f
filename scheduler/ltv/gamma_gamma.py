"""The Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma model
of monetary value").

A customer's transaction values are Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers, so
the mean of x transactions, zbar, has the density
    Gamma(px + q) / (Gamma(px) Gamma(q)) x gamma^q x^(px) zbar^(px - 1) / (gamma + x zbar)^(px + q).

- `fit_gamma_gamma`: maximum likelihood for (p, q, gamma) on the repeat buyers with a positive
  mean spend (x > 0 and zbar > 0; other rows are left out), optimised on the log scale with the
  analytic gradient (L-BFGS-B), optionally weighted.
- `expected_spend`: E(Z | x, zbar) = (q - 1) / (px + q - 1) x gamma p / (q - 1)
  + px / (px + q - 1) x zbar, a weighted average of the population mean gamma p / (q - 1) and
  the customer's own mean; for x = 0 it is the population mean. The population mean is finite
  only when q > 1: `expected_spend` raises ValueError for a fit with q <= 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import gammaln, psi

from scheduler.ltv.bgnbd import LOG_BOUND, fit_verdict
from scheduler.ltv.blas_threads import one_blas_thread


@dataclass(frozen=True)
class GammaGammaParams:
    """p: shape of each transaction's value; q, gamma: shape and scale of the customers'
    Gamma-distributed rate nu."""

    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    def log_array(self) -> NDArray[np.float64]:
        return np.log(np.array([self.p, self.q, self.gamma], dtype=np.float64))

    @classmethod
    def from_log(cls, log_params: ArrayLike) -> GammaGammaParams:
        p, q, gamma = (float(v) for v in np.exp(np.asarray(log_params, dtype=np.float64)))
        return cls(p=p, q=q, gamma=gamma)

    @property
    def population_mean(self) -> float:
        """gamma p / (q - 1): the mean spend of a customer we know nothing about (q > 1)."""
        if self.q <= 1.0:
            return float("inf")
        return self.gamma * self.p / (self.q - 1.0)


@dataclass(frozen=True)
class GammaGammaFit:
    """A fit: `converged` as for BG/NBD (optimiser success, finite, no parameter at its bound).
    `customers` is the total weight of the rows fitted (x > 0, zbar > 0)."""

    params: GammaGammaParams
    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    customers: float


class _SpendRows:
    """The rows of a fit, with the sums over rows that depend on x only, per distinct x."""

    def __init__(
        self, x: NDArray[np.float64], z: NDArray[np.float64], w: NDArray[np.float64]
    ) -> None:
        self.total = float(w.sum())
        self.x_values, inverse = np.unique(x, return_inverse=True)
        n = self.x_values.shape[0]
        self.x_weights = np.bincount(inverse, weights=w, minlength=n)
        self.x_log_z = np.bincount(inverse, weights=w * np.log(z), minlength=n)
        self.log_x_values = np.log(self.x_values)
        self.w = w
        self.wx = w * x
        self.xz = x * z


def log_likelihood_and_gradient(
    log_params: ArrayLike,
    x: ArrayLike,
    zbar: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """Weighted log-likelihood at exp(log_params) = (p, q, gamma) of rows with x > 0 and
    zbar > 0, and its gradient with respect to the log parameters."""
    rows = _SpendRows(*_fit_rows(x, zbar, weights))
    return _ll_and_grad(np.asarray(log_params, dtype=np.float64), rows)


def log_likelihood(
    params: GammaGammaParams, x: ArrayLike, zbar: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """The weighted log-likelihood (rows with x = 0 or zbar <= 0 left out)."""
    return log_likelihood_and_gradient(params.log_array(), x, zbar, weights)[0]


def _ll_and_grad(theta: NDArray[np.float64], d: _SpendRows) -> tuple[float, NDArray[np.float64]]:
    p, q, gamma = np.exp(theta)
    u, W, log_u, S = d.x_values, d.x_weights, d.log_x_values, d.x_log_z
    pu = p * u
    pu_q = pu + q
    log_gamma = np.log(gamma)
    psi_pu_q = psi(pu_q)
    # Terms of x only (and the sums of w log zbar per x), over the distinct x values.
    ll = float(W @ (gammaln(pu_q) - gammaln(pu) + pu * log_u) + S @ (pu - 1.0))
    ll += d.total * (q * log_gamma - gammaln(q))
    g_p = float(W @ (u * (psi_pu_q - psi(pu) + log_u)) + S @ u)
    g_q = float(W @ psi_pu_q) + d.total * (log_gamma - psi(q))
    g_gamma = d.total * q / gamma
    # -(px + q) log(gamma + x zbar), every row.
    log_gxz = np.log(gamma + d.xz)
    inv_gxz = 1.0 / (gamma + d.xz)
    wx_log, w_log = float(d.wx @ log_gxz), float(d.w @ log_gxz)
    ll -= p * wx_log + q * w_log
    g_p -= wx_log
    g_q -= w_log
    g_gamma -= p * float(d.wx @ inv_gxz) + q * float(d.w @ inv_gxz)
    return ll, np.array([g_p * p, g_q * q, g_gamma * gamma], dtype=np.float64)


def fit_gamma_gamma(
    x: ArrayLike,
    zbar: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    max_iterations: int = 1000,
    initial: GammaGammaParams | None = None,
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma parameters from repeat purchases x and their mean spend
    zbar; rows with x = 0 or zbar <= 0 are left out. Raises ValueError when none is left."""
    xs, zs, ws = _fit_rows(x, zbar, weights)
    total = float(ws.sum())
    if total <= 0:
        raise ValueError("a Gamma-Gamma fit needs at least one repeat buyer with positive spend")
    rows = _SpendRows(xs, zs, ws)

    def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        ll, grad = _ll_and_grad(theta, rows)
        return -ll / total, -grad / total

    if initial is None:
        # Start at p = 1, q = 2: a mean spend gamma p / (q - 1) equal to the observed one.
        initial = GammaGammaParams(p=1.0, q=2.0, gamma=max(float(ws @ zs) / total, 1e-6))
    with one_blas_thread():  # small fits: BLAS threads only get in the way
        result = minimize(
            objective,
            initial.log_array(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
            options={"maxiter": max_iterations, "ftol": 1e-14, "gtol": 1e-9},
        )
    theta = np.asarray(result.x, dtype=np.float64)
    ll = float(-result.fun * total)
    converged, message = fit_verdict(result, ll, ("p", "q", "gamma"))
    return GammaGammaFit(
        params=GammaGammaParams.from_log(theta),
        log_likelihood=ll,
        converged=converged,
        iterations=int(result.nit),
        message=message,
        customers=total,
    )


def expected_spend(params: GammaGammaParams, x: ArrayLike, zbar: ArrayLike) -> NDArray[np.float64]:
    """E(Z | x, zbar), the expected value of the customer's future transactions.

    Equals the population mean gamma p / (q - 1) when x = 0 (zbar is then ignored). Raises
    ValueError when q <= 1 (that mean is infinite). A zbar <= 0 (possible with negative
    margins) enters the weighted average as it is.
    """
    if not params.q > 1.0:
        raise ValueError(f"q = {params.q:.4g} <= 1: the Gamma-Gamma mean spend is infinite")
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    zs = np.atleast_1d(np.asarray(zbar, dtype=np.float64))
    p, q, gamma = params.p, params.q, params.gamma
    px = p * xs
    own = np.where(xs > 0, zs, 0.0)
    result: NDArray[np.float64] = (gamma * p + px * own) / (px + q - 1.0)
    return result


def _fit_rows(
    x: ArrayLike, zbar: ArrayLike, weights: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The rows a fit uses (x > 0, zbar > 0, weight > 0), as float arrays."""
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    zs = np.atleast_1d(np.asarray(zbar, dtype=np.float64))
    ws = np.ones(xs.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if xs.ndim != 1 or zs.shape != xs.shape or ws.shape != xs.shape:
        raise ValueError("x, zbar (and weights) must be 1-d arrays of the same length")
    keep = (xs > 0) & (zs > 0) & (ws > 0)
    return xs[keep], zs[keep], ws[keep]
