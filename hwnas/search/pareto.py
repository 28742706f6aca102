"""Pareto machinery on minimisation objectives: sorting, crowding, constraint-domination, hypervolume.

Objectives are an [N, M] array to *minimise* (accuracy enters as -accuracy);
``cv`` is each candidate's total constraint violation (0 = feasible). Deb's
constraint-domination: feasible beats infeasible, less violation beats more,
and among feasible candidates Pareto dominance decides.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    from hwnas.search.records import SearchRecord


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_fronts(F: np.ndarray) -> list[np.ndarray]:
    """Fast non-dominated sort (Deb et al. 2002) with a vectorised dominance matrix."""
    F = np.asarray(F, float)
    n = len(F)
    if n == 0:
        return []
    le = np.ones((n, n), bool)
    lt = np.zeros((n, n), bool)
    for f in F.T:                      # objective by objective: [N, N] each, not [N, N, M] reduced over M
        le &= f[:, None] <= f[None, :]
        lt |= f[:, None] < f[None, :]
    dom = le & lt                      # dom[i, j]: i dominates j
    count = np.count_nonzero(dom, axis=0)  # how many dominate j
    fronts, current = [], np.flatnonzero(count == 0)
    while len(current):
        fronts.append(current)
        count = count - np.count_nonzero(dom[current], axis=0)
        count[current] = -1
        current = np.flatnonzero(count == 0)
    return fronts


def constrained_fronts(F: np.ndarray, cv: np.ndarray) -> list[np.ndarray]:
    """Feasible candidates in Pareto fronts first; infeasible ones after, one front per violation level."""
    cv = np.asarray(cv, float)
    feas = np.flatnonzero(cv <= 0)
    fronts = [feas[f] for f in non_dominated_fronts(F[feas])]
    infeas = np.flatnonzero(cv > 0)
    for level in np.unique(cv[infeas]) if len(infeas) else ():
        fronts.append(infeas[cv[infeas] == level])
    return fronts


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance within one front; boundary points get infinity."""
    F = np.asarray(F, float)
    n, m = F.shape
    if n <= 2:
        return np.full(n, np.inf)
    d = np.zeros(n)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        span = F[order[-1], j] - F[order[0], j]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (F[order[2:], j] - F[order[:-2], j]) / span
    return d


def rank_and_crowding(F: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: its front index and crowding distance (for infeasible ones: -violation)."""
    n = len(F)
    rank, crowd = np.zeros(n, int), np.zeros(n)
    for r, idx in enumerate(constrained_fronts(F, cv)):
        rank[idx] = r
        crowd[idx] = crowding_distance(F[idx]) if cv[idx[0]] <= 0 else -cv[idx]
    return rank, crowd


def survive(F: np.ndarray, cv: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best by (rank, -crowding), deterministic on ties."""
    rank, crowd = rank_and_crowding(F, cv)
    order = np.lexsort((np.arange(len(F)), -crowd, rank))
    return order[:k]


def hypervolume_2d(F: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points of F (minimisation, 2 objectives) and bounded by ``ref``."""
    F = np.asarray(F, float).reshape(-1, 2)
    F = F[(F[:, 0] < ref[0]) & (F[:, 1] < ref[1])]
    if len(F) == 0:
        return 0.0
    F = F[np.lexsort((F[:, 1], F[:, 0]))]
    hv, best_y = 0.0, ref[1]
    for i, (x, y) in enumerate(F):
        if y < best_y:
            next_x = ref[0]
            hv += (next_x - x) * (best_y - y)
            best_y = y
    return float(hv)


def hypervolume_3d(F: np.ndarray, ref: Sequence[float]) -> float:
    """Exact volume dominated by the points of F (minimisation, 3 objectives) and bounded by ``ref``: the 2-D
    area of the points up to each level of the third objective, times the height of that level's slab."""
    F = np.asarray(F, float).reshape(-1, 3)
    F = F[np.all(F < np.asarray(ref, float), axis=1)]
    if len(F) == 0:
        return 0.0
    F = F[np.argsort(F[:, 2], kind="stable")]
    z = np.append(F[:, 2], ref[2])
    hv = 0.0
    for i in range(len(F)):
        if z[i + 1] > z[i]:
            hv += hypervolume_2d(F[:i + 1, :2], (ref[0], ref[1])) * (z[i + 1] - z[i])
    return float(hv)


MC_SAMPLES = 1 << 17


def hypervolume_mc(F: np.ndarray, ref: Sequence[float], samples: int = MC_SAMPLES, seed: int = 0) -> float:
    """Monte Carlo estimate for 4 or more objectives: the share of ``samples`` uniform points of the box from
    the front's ideal point to ``ref`` that some point of F dominates, times the box's volume. Seeded, so the
    same front gives the same number (what --stop-when-stalled compares); its standard error is about
    volume * sqrt(p (1 - p) / samples), under 0.2 % of the box with the default 131,072 samples."""
    ref = np.asarray(ref, float)
    F = np.asarray(F, float).reshape(-1, len(ref))
    F = F[np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0.0
    lo = F.min(0)
    box = float(np.prod(ref - lo))
    if box <= 0:
        return 0.0
    rng = np.random.default_rng(seed)
    hit = 0
    for start in range(0, samples, 4096):
        X = lo + rng.random((min(4096, samples - start), len(ref))) * (ref - lo)
        dom = np.ones((len(X), len(F)), bool)
        for j in range(len(ref)):
            dom &= F[None, :, j] <= X[:, None, j]
        hit += int(dom.any(1).sum())
    return box * hit / samples


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume of minimisation points F bounded by ``ref``: exact for 2 and 3 objectives
    (:func:`hypervolume_2d`, :func:`hypervolume_3d`), a seeded Monte Carlo estimate beyond
    (:func:`hypervolume_mc`)."""
    m = len(ref)
    if m == 2:
        return hypervolume_2d(F, (ref[0], ref[1]))
    if m == 3:
        return hypervolume_3d(F, ref)
    return hypervolume_mc(F, ref)


def best_key(record: SearchRecord) -> tuple[float, float, str]:
    """The order of "best under the constraints" (larger is better): higher accuracy, then lower latency, then
    the greater arch_id, so that an exact tie is decided by the archs themselves, never by the front's order."""
    return (record.accuracy, -record.latency_ms, record.arch_id)


def best_record(records: Iterable[SearchRecord]) -> SearchRecord | None:
    """The best record of a feasible front (by :func:`best_key`), None when it is empty: the one rule behind
    ``best.json``, ``hwnas finalize --pick best`` and the run report's highlighted arch. With more than two
    objectives the rule is the same (the most accurate feasible arch, then the faster): the front keeps
    every other trade-off, and ``--pick ARCH_ID`` takes any of them."""
    return max(records, key=best_key, default=None)
