"""Rank and error metrics shared by the fidelity benchmark and the accuracy evaluators."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def error_pct(predicted: float, measured: float) -> float:
    """Signed prediction error in percent of the measurement: + when the prediction is too slow."""
    return (predicted - measured) / measured * 100


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties handled), O(n^2): n is tens to a few thousands here."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom else 0.0


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), float)
    ranks[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tied = v == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks)."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall_tau_within(x: Sequence[float], y: Sequence[float], groups: Sequence[Any]) -> float:
    """Kendall's tau over pairs of the same group only (e.g. the same input resolution), pooled.

    A ranker that only learned "higher resolution is better" scores high on the plain tau and
    near 0 here; pairs across groups are left out, pairs within each group count once.
    """
    x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    iu = np.triu_indices(len(x), 1)
    same = (g[:, None] == g[None, :])[iu]
    dx = np.sign(x[:, None] - x[None, :])[iu][same]
    dy = np.sign(y[:, None] - y[None, :])[iu][same]
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom else 0.0


def kendall_tau_near(x: Sequence[float], y: Sequence[float], latency: Sequence[float], tol: float = 0.05) -> float:
    """Kendall's tau over pairs of about the same latency only (within ``tol`` of each other, relative): among
    networks a budget cannot tell apart, does ``x`` pick the more accurate? The question a hardware-aware
    search asks of its accuracy axis; size alone answers it poorly, since networks of the same latency
    have about the same size."""
    x, y, t = np.asarray(x, float), np.asarray(y, float), np.asarray(latency, float)
    iu = np.triu_indices(len(x), 1)
    ratio = (np.maximum(t[:, None], t[None, :]) / np.minimum(t[:, None], t[None, :]))[iu]
    near = ratio <= 1 + tol
    dx = np.sign(x[:, None] - x[None, :])[iu][near]
    dy = np.sign(y[:, None] - y[None, :])[iu][near]
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom else 0.0


def pairs_near(latency: Sequence[float], tol: float = 0.05) -> int:
    """How many pairs :func:`kendall_tau_near` compares (its figure means little below a few dozen)."""
    t = np.asarray(latency, float)
    iu = np.triu_indices(len(t), 1)
    return int(((np.maximum(t[:, None], t[None, :]) / np.minimum(t[:, None], t[None, :]))[iu] <= 1 + tol).sum())


def kendall_tau_top(x: Sequence[float], y: Sequence[float], k: int) -> float:
    """Kendall's tau among the ``k`` best by ``y`` (the reference): does the ranker order the top as well?"""
    x, y = np.asarray(x, float), np.asarray(y, float)
    top = np.argsort(-y, kind="stable")[:k]
    return kendall_tau(x[top], y[top])
