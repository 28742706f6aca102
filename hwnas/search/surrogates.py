"""Surrogate models of what an evaluation returns, for the predictor-guided strategy.

Both are fitted to architecture encodings (``space.encode_many``) and give, per candidate and output, a
mean and a spread (for expected improvement) and posterior draws (for Thompson sampling):

* ``linear``: Bayesian linear regression, prior and noise precisions set by evidence maximisation
  (MacKay's fixed point). On the mbv3 benchmark's accuracy (itself a smooth model: an MLP fitted to
  SynFlow scores) it ranks held-out archs at Kendall tau 0.50 after 50 evaluations, 0.84 after 150,
  0.88 after 250; the MLP ensemble below: 0.33, 0.59, 0.71 (tools/bench_surrogates.py).
* ``mlp``: an ensemble of small MLPs, each on its own bootstrap resample (BANANAS); more flexible, so it
  can overtake the linear model when there are many evaluations and the accuracy surface is not smooth.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn


class Surrogate(Protocol):
    def mean_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation, each [N, outputs]."""
    def draws(self, X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` posterior draws of the outputs, [k, N, outputs]."""


class Ensemble(nn.Module):
    """``members`` two-hidden-layer MLPs evaluated as one batched model (one Adam step trains them all)."""

    def __init__(self, members: int, n_in: int, hidden: int, n_out: int):
        super().__init__()

        def weight(a: int, b: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(members, a, b) * (2.0 / a) ** 0.5)

        self.w = nn.ParameterList([weight(n_in, hidden), weight(hidden, hidden), weight(hidden, n_out)])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(members, 1, n)) for n in (hidden, hidden, n_out)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [members, N, n_in] (or [N, n_in], shared) -> [members, N, n_out]."""
        if x.dim() == 2:
            x = x.expand(len(self.w[0]), -1, -1)
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.w) - 1:
                x = torch.relu(x)
        return x


def fit_ensemble(X: torch.Tensor, Y: torch.Tensor, members: int, hidden: int, steps: int, seed: int) -> Ensemble:
    """Each member fitted full-batch (Adam) to standardised targets on its own bootstrap resample of the rows."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = Ensemble(members, X.shape[1], hidden, Y.shape[1])
        rows = torch.randint(len(X), (members, len(X)))
        x, y = X[rows], Y[rows]
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()
    return net.eval()


class _Standardised:
    """Targets standardised per column for fitting, predictions mapped back."""

    def __init__(self, Y: np.ndarray):
        self.mean, self.scale = Y.mean(0), Y.std(0) + 1e-9


class MLPEnsemble(_Standardised):
    def __init__(self, X: np.ndarray, Y: np.ndarray, members: int = 5, hidden: int = 64, steps: int = 200,
                 seed: int = 0):
        super().__init__(Y)
        self.members = members
        self.net = fit_ensemble(torch.from_numpy(X).float(), torch.from_numpy((Y - self.mean) / self.scale).float(),
                                members, hidden, steps, seed)

    def _all(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(X).float()).numpy() * self.scale + self.mean

    def mean_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self._all(X)
        return p.mean(0), p.std(0)

    def draws(self, X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """A member per candidate and draw, picked at random (Thompson sampling over the ensemble)."""
        p = self._all(X)
        pick = rng.integers(self.members, size=(k, len(X)))
        return p[pick, np.arange(len(X))[None, :]]


class BayesianLinear(_Standardised):
    """y = x.w + noise per output, w ~ N(0, 1/alpha), noise ~ N(0, 1/beta), on standardised inputs; alpha and
    beta maximise the evidence (MacKay's fixed point, as scikit-learn's BayesianRidge)."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, iterations: int = 100):
        super().__init__(Y)
        sd = X.std(0)
        # a column that never varied among the evaluated archs carries no information: scaled by 1, not by
        # 1e-9, or a candidate that sets it would look a billion times more uncertain than the rest
        self.x_mean, self.x_scale = X.mean(0), np.where(sd > 1e-12, sd, 1.0)
        P = (X - self.x_mean) / self.x_scale
        Z = (Y - self.mean) / self.scale
        n, d = P.shape
        eig, V = np.linalg.eigh(P.T @ P)
        eig = np.clip(eig, 0.0, None)
        self.w: list[np.ndarray] = []
        self.factor: list[np.ndarray] = []  # F with F F^T = the posterior covariance of w
        for j in range(Z.shape[1]):
            z = Z[:, j]
            alpha, beta = 1.0, 1.0 / max(float(z.var()), 1e-6)
            proj = V.T @ (P.T @ z)
            for _ in range(iterations):
                # posterior mean in the eigenbasis: m = beta (alpha + beta eig)^-1 V^T P^T z
                m_eig = beta * proj / (alpha + beta * eig)
                gamma = float((beta * eig / (alpha + beta * eig)).sum())
                resid = float(((z - P @ (V @ m_eig)) ** 2).sum())
                new_alpha = gamma / max(float(m_eig @ m_eig), 1e-12)
                new_beta = max(n - gamma, 1e-6) / max(resid, 1e-12)
                done = abs(new_alpha - alpha) <= 1e-6 * alpha and abs(new_beta - beta) <= 1e-6 * beta
                alpha, beta = new_alpha, new_beta
                if done:
                    break
            m_eig = beta * proj / (alpha + beta * eig)
            self.w.append(V @ m_eig)
            self.factor.append(V / np.sqrt(alpha + beta * eig))  # cov = V diag(1/(alpha + beta eig)) V^T

    def _p(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_mean) / self.x_scale

    def mean_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = self._p(X)
        mean = np.column_stack([P @ w for w in self.w])
        # the spread of the mean (what more evaluations would teach), not the evaluation noise
        var = np.column_stack([((P @ f) ** 2).sum(1) for f in self.factor])
        return mean * self.scale + self.mean, np.sqrt(np.maximum(var, 0.0)) * self.scale

    def draws(self, X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        P = self._p(X)
        out = np.empty((k, len(X), len(self.w)))
        for j, (w, f) in enumerate(zip(self.w, self.factor)):
            W = w[None, :] + rng.standard_normal((k, len(w))) @ f.T
            out[:, :, j] = (P @ W.T).T
        return out * self.scale + self.mean


SURROGATES = ("linear", "mlp")
