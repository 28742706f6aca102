import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from hwnas.metrics import kendall_tau, spearman_rho


def test_kendall_tau_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10, 60).astype(float)
    y = x + rng.normal(0, 3, 60)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_rho_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 8, 50).astype(float)
    y = x + rng.normal(0, 2, 50)
    assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert spearman_rho([1, 1, 1], [1, 2, 3]) == 0.0
