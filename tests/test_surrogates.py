"""hwnas/search/surrogates.py: the predictor-guided strategy's models of an evaluation."""
import numpy as np
import pytest

from hwnas.search.surrogates import BayesianLinear, MLPEnsemble


def linear_data(n, rng, noise=0.05):
    X = rng.integers(0, 3, size=(n, 12)).astype(float)
    w = np.linspace(-1, 1, 12)
    return X, np.column_stack([X @ w + noise * rng.standard_normal(n), -(X @ w)])


def test_bayesian_linear_learns_a_linear_surface_and_knows_what_it_does_not_know():
    rng = np.random.default_rng(0)
    X, Y = linear_data(40, rng)
    Xt, Yt = linear_data(500, rng, noise=0.0)
    model = BayesianLinear(X, Y)
    mean, std = model.mean_std(Xt)
    assert np.corrcoef(mean[:, 0], Yt[:, 0])[0, 1] > 0.98 and np.corrcoef(mean[:, 1], Yt[:, 1])[0, 1] > 0.98
    far = Xt + 10.0  # far outside what it was fitted on: wider
    assert np.median(model.mean_std(far)[1][:, 0]) > 5 * np.median(std[:, 0])
    more = BayesianLinear(*linear_data(400, rng))
    assert np.median(more.mean_std(Xt)[1][:, 0]) < np.median(std[:, 0])  # more data, less doubt
    d = model.draws(Xt, 400, np.random.default_rng(1))
    assert d.shape == (400, 500, 2)
    assert np.abs(d.mean(0) - mean).max() < 4 * std.max() / np.sqrt(400) * 3
    assert d.std(0)[:, 0] == pytest.approx(std[:, 0], rel=0.25)


def test_constant_outputs_do_not_break_the_fit():
    """A violation column that is 0 for every evaluated arch (all feasible) is predicted 0, with no NaN."""
    rng = np.random.default_rng(0)
    X, Y = linear_data(30, rng)
    Y = np.column_stack([Y[:, 0], np.zeros(30)])
    mean, std = BayesianLinear(X, Y).mean_std(X)
    assert np.isfinite(mean).all() and np.isfinite(std).all() and np.abs(mean[:, 1]).max() < 1e-6


def test_mlp_ensemble_is_seeded():
    rng = np.random.default_rng(0)
    X, Y = linear_data(40, rng)
    a = MLPEnsemble(X, Y, members=3, steps=50, seed=7).mean_std(X)[0]
    b = MLPEnsemble(X, Y, members=3, steps=50, seed=7).mean_std(X)[0]
    assert np.array_equal(a, b)


def test_a_column_that_never_varied_does_not_make_a_candidate_look_infinitely_uncertain():
    """One-hot genes a handful of evaluated archs never set are common early in a search; a candidate that
    sets one must not outrank every other candidate on uncertainty alone."""
    rng = np.random.default_rng(0)
    X, Y = linear_data(30, rng)
    X[:, 3] = 0.0  # never set among the evaluated
    cand = X[:5].copy()
    cand[0, 3] = 1.0
    std = BayesianLinear(X, Y).mean_std(cand)[1][:, 0]
    assert std[0] < 10 * np.median(std[1:])
