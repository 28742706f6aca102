import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from hwnas.core.metrics import kendall_tau, spearman_rho


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


def test_tau_within_groups_ignores_pairs_across_groups():
    from hwnas.core.metrics import kendall_tau_within

    # the score is the group (resolution) only: perfect across groups, no information within them
    groups = [24, 24, 24, 32, 32, 32]
    ref = [1.0, 2.0, 3.0, 11.0, 12.0, 13.0]
    assert kendall_tau(groups, ref) > 0.7 and kendall_tau_within(groups, ref, groups) == 0.0
    within = [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]  # reversed inside each group
    assert kendall_tau_within(within, ref, groups) == pytest.approx(-1.0)
    # pooled over the groups' pairs: the same as scipy's tau on the concatenated within-group pairs
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, 40)
    x, y = rng.normal(size=40), rng.normal(size=40)
    pairs = [(i, j) for i in range(40) for j in range(i + 1, 40) if g[i] == g[j]]
    conc = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs)
    assert kendall_tau_within(x, y, g) == pytest.approx(conc / len(pairs))


def test_tau_top_k_looks_only_at_the_reference_best():
    from hwnas.core.metrics import kendall_tau_top

    ref = np.arange(20, dtype=float)
    score = ref.copy()
    score[:10] = score[:10][::-1]  # the bottom half scrambled, the top half intact
    assert kendall_tau_top(score, ref, 10) == pytest.approx(1.0)
    assert kendall_tau_top(-ref, ref, 5) == pytest.approx(-1.0)
