"""BG/NBD: the published CDNOW fit (Fader, Hardie & Lee 2005), gradients, predictions."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import beta, gamma, hyp2f1

from scheduler.ltv.bgnbd import (
    WEEKS_PER_MONTH,
    BgNbdParams,
    discounted_expected_transactions,
    expected_transactions,
    fit_bgnbd,
    log_likelihood,
    log_likelihood_and_gradient,
    p_alive,
)
from tests.test_ltv_summary import cdnow_summary, cdnow_summary_file

PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_LL = -9582.4


def cdnow_columns() -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    table = cdnow_summary_file()
    return table["x"].astype(np.int64), table["t_x"], table["T"]


def assert_published(params: BgNbdParams) -> None:
    for name, value in PUBLISHED.as_dict().items():
        assert params.as_dict()[name] == pytest.approx(value, rel=0.01), name


def test_fit_on_the_cdnow_summary_gives_the_published_parameters() -> None:
    fit = fit_bgnbd(*cdnow_columns())
    assert fit.converged, fit.message
    assert_published(fit.params)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LL, abs=0.5)
    assert 0 < fit.iterations < 200


def test_fit_on_the_summary_built_from_the_raw_purchases_gives_the_same() -> None:
    summary = cdnow_summary()
    fit = fit_bgnbd(summary.x, summary.t_x, summary.T)
    assert fit.converged, fit.message
    assert_published(fit.params)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LL, abs=0.5)


def test_conditional_expectation_of_the_published_example() -> None:
    # x = 2, t_x = 30.43, T = 38.86: 1.226 purchases in the next 39 weeks.
    fitted = fit_bgnbd(*cdnow_columns()).params
    for params in (PUBLISHED, fitted):
        expected = expected_transactions(params, 39.0, [2], [30.43], [38.86])
        assert expected[0] == pytest.approx(1.226, rel=0.005)


def test_collapsed_rows_weights_and_the_plain_fit_agree() -> None:
    x, t_x, T = cdnow_columns()
    plain = fit_bgnbd(x, t_x, T, collapse=False)
    collapsed = fit_bgnbd(x, t_x, T)
    rows, counts = np.unique(np.column_stack((x, t_x, T)), axis=0, return_counts=True)
    weighted = fit_bgnbd(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], counts)
    assert rows.shape[0] < x.shape[0]
    for fit in (collapsed, weighted):
        assert fit.log_likelihood == pytest.approx(plain.log_likelihood, abs=1e-6)
        for name, value in plain.params.as_dict().items():
            assert fit.params.as_dict()[name] == pytest.approx(value, rel=1e-4), name
    assert log_likelihood(PUBLISHED, rows[:, 0], rows[:, 1], rows[:, 2], counts) == pytest.approx(
        log_likelihood(PUBLISHED, x, t_x, T), rel=1e-12
    )


@pytest.mark.parametrize(
    "point",
    [(0.243, 4.414, 0.793, 2.426), (1.5, 0.7, 3.0, 0.4), (0.05, 40.0, 0.2, 9.0)],
)
def test_the_analytic_gradient_matches_central_differences(
    point: tuple[float, float, float, float],
) -> None:
    x, t_x, T = cdnow_columns()
    weights = np.random.default_rng(7).integers(1, 4, x.shape[0])
    theta = np.log(np.array(point))
    _, gradient = log_likelihood_and_gradient(theta, x, t_x, T, weights)
    step = 1e-5
    for i in range(4):
        e = np.zeros(4)
        e[i] = step
        up = log_likelihood_and_gradient(theta + e, x, t_x, T, weights)[0]
        down = log_likelihood_and_gradient(theta - e, x, t_x, T, weights)[0]
        assert gradient[i] == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-4)


def test_the_likelihood_is_the_papers_equation_six() -> None:
    r, alpha, a, b = 0.5, 3.0, 0.8, 2.0
    params = BgNbdParams(r, alpha, a, b)

    def by_hand(x: int, t_x: float, T: float) -> float:
        common = gamma(r + x) * alpha**r / gamma(r)
        first = beta(a, b + x) / beta(a, b) * common / (alpha + T) ** (r + x)
        second = beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x)
        return float(np.log(first + (second if x > 0 else 0.0)))

    rows = [(0, 0.0, 10.0), (1, 2.0, 10.0), (4, 9.5, 12.0)]
    expected = sum(by_hand(*row) for row in rows)
    x, t_x, T = (np.array(column) for column in zip(*rows, strict=True))
    assert log_likelihood(params, x, t_x, T) == pytest.approx(expected, rel=1e-12)


def test_the_expectation_is_the_papers_equation_ten_for_moderate_values() -> None:
    params = BgNbdParams(0.5, 3.0, 0.8, 2.0)
    r, alpha, a, b = 0.5, 3.0, 0.8, 2.0
    x = np.array([0, 1, 3, 8])
    t_x = np.array([0.0, 4.0, 7.0, 19.0])
    T = np.array([2.0, 10.0, 10.0, 20.0])
    t = 26.0
    z = t / (alpha + T + t)
    growth = (a + b + x - 1) / (a - 1)
    growth *= 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, z
    )
    rest = (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    denominator = 1 + np.where(x > 0, rest, 0.0)
    got = expected_transactions(params, t, x, t_x, T)
    assert got == pytest.approx(growth / denominator, rel=1e-10)
    assert p_alive(params, x, t_x, T) == pytest.approx(1 / denominator, rel=1e-12)
    assert p_alive(params, x, t_x, T)[0] == 1.0


@pytest.mark.parametrize(
    "params",
    [PUBLISHED, BgNbdParams(0.0016, 0.23, 756720.0, 1.3e-6), BgNbdParams(3e4, 3e5, 0.002, 4e5)],
)
def test_the_expectation_stays_finite_and_bounded_for_large_x_and_T(params: BgNbdParams) -> None:
    # While alive a customer buys at most at their expected rate (r + x) / (alpha + T).
    x = np.array([0, 1, 50, 500, 5000, 20000])
    T = np.array([1.0, 3000.0, 520.0, 1000.0, 5200.0, 5200.0])
    t_x = T * np.array([0.0, 0.001, 1.0, 0.99, 0.9999, 1.0])
    for t in (1.0, 52.0, 156.0):
        got = expected_transactions(params, t, x, t_x, T)
        bound = (params.r + x) / (params.alpha + T) * t
        assert np.all(np.isfinite(got))
        assert np.all(got >= 0)
        assert np.all(got <= bound * (1 + 1e-9))


def test_a_equal_to_one_is_nudged_to_a_finite_value() -> None:
    x, t_x, T = [3], [8.0], [10.0]
    at_one = expected_transactions(BgNbdParams(0.5, 3.0, 1.0, 2.0), 26.0, x, t_x, T)[0]
    below = expected_transactions(BgNbdParams(0.5, 3.0, 1.0 - 1e-5, 2.0), 26.0, x, t_x, T)[0]
    above = expected_transactions(BgNbdParams(0.5, 3.0, 1.0 + 1e-5, 2.0), 26.0, x, t_x, T)[0]
    assert np.isfinite(at_one)
    assert at_one == pytest.approx((below + above) / 2, rel=1e-5)


def test_discounted_purchases_without_discount_telescope_to_the_horizons_expectation() -> None:
    x, t_x, T = cdnow_columns()
    months = 36
    flat = discounted_expected_transactions(
        PUBLISHED, x, t_x, T, horizon_months=months, annual_discount_rate=0.0
    )
    whole = expected_transactions(PUBLISHED, months * WEEKS_PER_MONTH, x, t_x, T)
    assert flat == pytest.approx(whole, rel=1e-10)
    discounted = discounted_expected_transactions(PUBLISHED, x, t_x, T)
    assert np.all(discounted < flat)
    assert np.all(discounted > flat * 1.1**-3)


def test_discounted_purchases_are_each_months_expectation_discounted_by_hand() -> None:
    x, t_x, T = np.array([2, 0]), np.array([30.43, 0.0]), np.array([38.86, 38.86])
    month = 365.25 / 12 / 7
    e1 = expected_transactions(PUBLISHED, month, x, t_x, T)
    e2 = expected_transactions(PUBLISHED, 2 * month, x, t_x, T)
    by_hand = e1 * 1.1 ** (-1 / 12) + (e2 - e1) * 1.1 ** (-2 / 12)
    got = discounted_expected_transactions(
        PUBLISHED, x, t_x, T, horizon_months=2, annual_discount_rate=0.10
    )
    assert got == pytest.approx(by_hand, rel=1e-12)
    none = discounted_expected_transactions(PUBLISHED, x, t_x, T, horizon_months=0)
    assert none.tolist() == [0.0, 0.0]


def test_a_fit_stopped_early_is_not_converged() -> None:
    fit = fit_bgnbd(*cdnow_columns(), max_iterations=2)
    assert not fit.converged
    assert "without converging" in fit.message


def test_a_fit_needs_a_customer_and_consistent_rows() -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        fit_bgnbd([], [], [])
    with pytest.raises(ValueError, match="t_x <= T"):
        fit_bgnbd([1], [5.0], [4.0])
