"""Gamma-Gamma: the published CDNOW fit (Fader & Hardie 2013), gradients, expected spend."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import gammaln

from scheduler.ltv.gamma_gamma import (
    GammaGammaParams,
    expected_spend,
    fit_gamma_gamma,
    log_likelihood,
    log_likelihood_and_gradient,
)
from tests.test_ltv_summary import cdnow_summary, cdnow_summary_file

PUBLISHED = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


def cdnow_spend() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    table = cdnow_summary_file()
    return table["x"], table["zbar"]


def assert_published(params: GammaGammaParams) -> None:
    for name, value in PUBLISHED.as_dict().items():
        assert params.as_dict()[name] == pytest.approx(value, rel=0.01), name


def test_fit_on_the_cdnow_repeat_buyers_gives_the_published_parameters() -> None:
    fit = fit_gamma_gamma(*cdnow_spend())
    assert fit.converged, fit.message
    assert fit.customers == 946
    assert_published(fit.params)


def test_fit_on_the_summary_built_from_the_raw_purchases_gives_the_same() -> None:
    summary = cdnow_summary()
    fit = fit_gamma_gamma(summary.x, summary.spend)
    assert fit.converged, fit.message
    assert_published(fit.params)


def test_rows_without_repeat_or_positive_spend_are_left_out_and_weights_count_rows() -> None:
    x, zbar = cdnow_spend()
    fit = fit_gamma_gamma(x, zbar)
    padded = fit_gamma_gamma(np.r_[x, [0, 3, 2]], np.r_[zbar, [12.0, 0.0, -5.0]])
    assert padded.customers == fit.customers
    assert padded.params.as_dict() == pytest.approx(fit.params.as_dict(), rel=1e-6)
    doubled = log_likelihood(PUBLISHED, np.r_[x, x], np.r_[zbar, zbar])
    assert log_likelihood(PUBLISHED, x, zbar, np.full(x.shape[0], 2)) == pytest.approx(
        doubled, rel=1e-12
    )
    with pytest.raises(ValueError, match="at least one repeat buyer"):
        fit_gamma_gamma([0, 2], [0.0, -1.0])


def test_the_likelihood_is_the_gamma_gamma_density() -> None:
    p, q, g = 2.0, 3.0, 10.0
    rows = [(1, 20.0), (2, 7.5), (5, 31.0)]

    def by_hand(x: int, z: float) -> float:
        return float(
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(g)
            + p * x * np.log(x)
            + (p * x - 1) * np.log(z)
            - (p * x + q) * np.log(g + x * z)
        )

    x, z = (np.array(column) for column in zip(*rows, strict=True))
    expected = sum(by_hand(*row) for row in rows)
    assert log_likelihood(GammaGammaParams(p, q, g), x, z) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("point", [(6.25, 3.74, 15.44), (0.8, 1.2, 2.0), (20.0, 9.0, 150.0)])
def test_the_analytic_gradient_matches_central_differences(
    point: tuple[float, float, float],
) -> None:
    x, zbar = cdnow_spend()
    weights = np.random.default_rng(11).integers(1, 4, x.shape[0])
    theta = np.log(np.array(point))
    _, gradient = log_likelihood_and_gradient(theta, x, zbar, weights)
    step = 1e-5
    for i in range(3):
        e = np.zeros(3)
        e[i] = step
        up = log_likelihood_and_gradient(theta + e, x, zbar, weights)[0]
        down = log_likelihood_and_gradient(theta - e, x, zbar, weights)[0]
        assert gradient[i] == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-4)


def test_expected_spend_weighs_the_population_mean_against_the_customers_own() -> None:
    params = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
    mean = 15.0 * 6.0 / 3.0  # 30
    assert params.population_mean == mean
    got = expected_spend(params, [0, 1, 4], [99.0, 10.0, 50.0])
    # x = 1: (3 / 9) * 30 + (6 / 9) * 10; x = 4: (3 / 27) * 30 + (24 / 27) * 50.
    assert got == pytest.approx([mean, 10.0 + 60.0 / 9, 10.0 / 3 + 400.0 / 9], rel=1e-12)


def test_expected_spend_needs_q_above_one() -> None:
    params = GammaGammaParams(p=2.0, q=1.0, gamma=5.0)
    assert params.population_mean == float("inf")
    with pytest.raises(ValueError, match="q = 1 <= 1"):
        expected_spend(params, [0], [0.0])
