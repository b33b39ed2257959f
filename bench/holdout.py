"""Benchmark: which purchase model predicts CDNOW's holdout best (BG/NBD, MBG/NBD, Pareto/NBD).

Calibrates each model on weeks 1-39 of the CDNOW sample (tests/data/cdnow: 1997-01-01 to
1997-09-30, the published summary rebuilt by `summarise`), predicts each customer's repeat
transactions in weeks 40-78 (1997-10-01 to 1998-06-30, 39 weeks) and compares the total, and
the mean absolute error per customer, with what they did (same-day purchases are one
transaction). Also prints each fit's log-likelihood and time.

- BG/NBD: the product's fit (`scheduler.ltv.bgnbd`), Fader, Hardie & Lee 2005.
- MBG/NBD: Batislam, Denizel & Filiztekin 2007 (a customer may drop out after their first
  purchase as well), maximum likelihood here with Nelder-Mead on log parameters.
- Pareto/NBD: Schmittlein, Morrison & Colombo 1987, the likelihood and conditional
  expectation of Fader & Hardie's note "A note on deriving the Pareto/NBD model" (2005);
  Nelder-Mead on log parameters.

    python bench/holdout.py

Prints the figures; exits 0 (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.ltv.bgnbd import expected_transactions, fit_bgnbd
from scheduler.ltv.summary import summarise

CDNOW = Path(__file__).resolve().parent.parent / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = date(1997, 9, 30).toordinal()
HOLDOUT_END = date(1998, 6, 30).toordinal()
Array = NDArray[np.float64]


def load() -> tuple[NDArray[np.int64], NDArray[np.int64], Array]:
    raw = np.loadtxt(CDNOW, dtype=np.int64, usecols=(1, 2))
    amounts = np.loadtxt(CDNOW, dtype=np.float64, usecols=4)
    days = np.array(
        [date(int(s) // 10000, int(s) // 100 % 100, int(s) % 100).toordinal() for s in raw[:, 1]],
        dtype=np.int64,
    )
    return raw[:, 0], days, amounts


def holdout_counts(
    ids: NDArray[np.int64], days: NDArray[np.int64], customers: NDArray[np.int64]
) -> Array:
    later = (days > CALIBRATION_END) & (days <= HOLDOUT_END)
    pairs = np.unique(np.stack([ids[later], days[later]]), axis=1)
    counts = np.zeros(customers.shape[0])
    at = np.searchsorted(customers, pairs[0])
    np.add.at(counts, at, 1.0)
    return counts


# --- MBG/NBD ----------------------------------------------------------------------------------


def mbgnbd_ll(theta: Array, x: Array, t_x: Array, T: Array) -> float:
    r, alpha, a, b = np.exp(theta)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x + 1) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return float(np.sum(a1 + a2 + a3 + np.logaddexp(a4, 0.0)))


def mbgnbd_expected(params: Array, t: float, x: Array, t_x: Array, T: Array) -> Array:
    r, alpha, a, b = params
    hyp = hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + T + t))
    numerator = (a + b + x) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    denominator = 1 + a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    result: Array = numerator / denominator
    return result


# --- Pareto/NBD -------------------------------------------------------------------------------


def _log_a0(r: float, alpha: float, s: float, beta: float, x: Array, t_x: Array, T: Array) -> Array:
    """log A0 of the Pareto/NBD likelihood (Fader & Hardie 2005, eq. 22-23)."""
    rsx = r + s + x
    second: float | Array
    if alpha >= beta:
        big, other, second = alpha, beta, s + 1
    else:
        big, other, second = beta, alpha, r + x
    first = hyp2f1(rsx, second, rsx + 1, (big - other) / (big + t_x)) / (big + t_x) ** rsx
    last = hyp2f1(rsx, second, rsx + 1, (big - other) / (big + T)) / (big + T) ** rsx
    with np.errstate(divide="ignore", invalid="ignore"):
        result: Array = np.log(first - last)
    return result


def pareto_ll(theta: Array, x: Array, t_x: Array, T: Array) -> float:
    r, alpha, s, beta = np.exp(theta)
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    gone = np.log(s) - np.log(r + s + x) + _log_a0(r, alpha, s, beta, x, t_x, T)
    total = float(np.sum(head + np.logaddexp(alive, gone)))
    return total if np.isfinite(total) else -1e300


def pareto_expected(params: Array, t: float, x: Array, t_x: Array, T: Array) -> Array:
    r, alpha, s, beta = params
    log_ratio = (
        np.log(s)
        - np.log(r + s + x)
        + (r + x) * np.log(alpha + T)
        + s * np.log(beta + T)
        + _log_a0(r, alpha, s, beta, x, t_x, T)
    )
    p_alive = 1.0 / (1.0 + np.exp(log_ratio))
    growth = (
        (r + x)
        * (beta + T)
        / ((alpha + T) * (s - 1))
        * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
    )
    result: Array = growth * p_alive
    return result


def fit(
    ll: Callable[[Array, Array, Array, Array], float], start: Array, *data: Array
) -> tuple[Array, float, float]:
    began = time.perf_counter()
    result = minimize(
        lambda theta: -ll(theta, *data),
        np.log(start),
        method="Nelder-Mead",
        options={"maxiter": 8000, "maxfev": 8000, "xatol": 1e-7, "fatol": 1e-7},
    )
    return np.exp(result.x), -float(result.fun), time.perf_counter() - began


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    ids, days, amounts = load()
    summary = summarise(ids, days, amounts, as_of_day=CALIBRATION_END)
    x = summary.x.astype(np.float64)
    t_x, T = summary.t_x, summary.T
    actual = holdout_counts(ids, days, summary.customer_id)
    weeks = (HOLDOUT_END - CALIBRATION_END) / 7
    print(f"CDNOW: {len(summary):,} customers, calibration weeks 1-39, holdout {weeks:.1f} weeks")
    print(f"actual repeat transactions in the holdout: {actual.sum():,.0f}\n")

    began = time.perf_counter()
    bg = fit_bgnbd(summary.x, t_x, T)
    bg_time = time.perf_counter() - began
    bg_pred = expected_transactions(bg.params, weeks, summary.x, t_x, T)
    mbg_params, mbg_ll, mbg_time = fit(mbgnbd_ll, np.array([0.5, 5.0, 1.0, 3.0]), x, t_x, T)
    mbg_pred = mbgnbd_expected(mbg_params, weeks, x, t_x, T)
    pnbd_params, pnbd_ll, pnbd_time = fit(pareto_ll, np.array([0.5, 10.0, 0.5, 10.0]), x, t_x, T)
    pnbd_pred = pareto_expected(pnbd_params, weeks, x, t_x, T)

    rows = [
        (
            "BG/NBD (product)",
            "r, alpha, a, b",
            list(bg.params.as_dict().values()),
            bg.log_likelihood,
            bg_time,
            bg_pred,
        ),
        ("MBG/NBD", "r, alpha, a, b", mbg_params.tolist(), mbg_ll, mbg_time, mbg_pred),
        ("Pareto/NBD", "r, alpha, s, beta", pnbd_params.tolist(), pnbd_ll, pnbd_time, pnbd_pred),
    ]
    print(
        f"{'model':<18} {'predicted':>9} {'error':>7} {'MAE/cust':>9} {'log-lik':>10} "
        f"{'fit ms':>7}  parameters"
    )
    for name, names, params, ll, seconds, predicted in rows:
        total = float(predicted.sum())
        error = (total - actual.sum()) / actual.sum()
        mae = float(np.mean(np.abs(predicted - actual)))
        shown = ", ".join(f"{p:.4g}" for p in params)
        print(
            f"{name:<18} {total:>9,.1f} {error:>+7.1%} {mae:>9.4f} {ll:>10.2f} "
            f"{seconds * 1000:>7.0f}  {names} = {shown}"
        )


if __name__ == "__main__":
    main()
