"""Predictor-guided search (BANANAS-style; the seeds' ``PredictorGuidedNAS``).

Every generation: fit a surrogate on ``SpaceArch.encode()`` to everything evaluated so far (each objective
column and the constraint violation are outputs; ``surrogate=linear``, Bayesian linear regression, by
default, or ``mlp``, an ensemble of small MLPs: hwnas.search.surrogates), propose many candidates by
mutating and crossing the current elite (plus a few uniform samples), and pick the ``population`` to
evaluate by an acquisition:

* ``ehvi`` (``auto`` picks it in a search run with two objectives): greedy **expected hypervolume
  improvement** over the evaluated front, with latency (or the other objective) exact from the LUT and
  accuracy Gaussian from the surrogate; each pick joins the front at its predicted mean before the next;
* ``front``: one posterior draw per candidate (Thompson sampling), candidates ranked with the evaluated
  elite by non-domination and crowding; ``thompson``: the same draws, NSGA-II survival among candidates.

In a search run the strategy is bound to the LUT predictor and the constraints (``bind``): every
objective but accuracy (latency, params, MACs, memory) and every violation but a minimum accuracy's are
then computed exactly for each candidate, so only accuracy is guessed and no evaluation is spent on an
arch over the budget; the first generation is then spread evenly over the latencies under the budget.
Driven without ``bind`` it learns every column from what it was told. Everything evaluated is in
``state_dict()`` and every fit and draw is seeded by the generation, so a resumed run continues exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from hwnas.core.errors import SearchError
from hwnas.search.pareto import non_dominated_fronts, rank_and_crowding, survive
from hwnas.search.problem import FAILED_VIOLATION
from hwnas.search.surrogates import SURROGATES, BayesianLinear, MLPEnsemble, Surrogate
from hwnas.search.strategies import ArchiveStrategy, generation_seed, register_strategy
from hwnas.spaces.base import Space, SpaceArch


def _staircase(front: np.ndarray, ref: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The region a 2-objective front (minimisation) leaves undominated, as intervals of the second objective:
    (starts, ends, levels): over [start, end) everything with first objective below ``level`` is new."""
    F = front[(front[:, 0] < ref[0]) & (front[:, 1] < ref[1])]
    F = F[np.lexsort((F[:, 0], F[:, 1]))]
    level = np.minimum.accumulate(F[:, 0]) if len(F) else np.zeros(0)
    starts = np.concatenate([[-np.inf], F[:, 1]])
    ends = np.concatenate([F[:, 1], [ref[1]]])
    return starts, ends, np.concatenate([[ref[0]], level])


def expected_hv_improvement(mu: np.ndarray, sigma: np.ndarray, exact: np.ndarray, front: np.ndarray,
                            ref: tuple[float, float]) -> np.ndarray:
    """Expected hypervolume improvement of candidates over ``front`` (2 objectives, minimised, bounded by
    ``ref``) when the first objective is Gaussian (``mu``, ``sigma``) and the second is known (``exact``).
    In closed form: the improvement is the integral over the second objective of max(0, level - y), and
    E[max(0, c - y)] = (c - mu) Phi(z) + sigma phi(z), z = (c - mu) / sigma, on each step of the staircase."""
    starts, ends, levels = _staircase(np.asarray(front, float).reshape(-1, 2), ref)
    width = np.clip(ends[None, :] - np.maximum(starts[None, :], exact[:, None]), 0.0, None)  # [N, steps]
    sigma = np.maximum(sigma, 1e-12)[:, None]
    gap = levels[None, :] - mu[:, None]
    z = gap / sigma
    cdf = torch.special.ndtr(torch.from_numpy(z)).numpy()
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    return (width * (gap * cdf + sigma * pdf)).sum(1)


ACQUISITIONS = ("auto", "ehvi", "front", "thompson")


def _ehvi_fits(objectives: Sequence[str]) -> bool:
    return len(objectives) == 2 and "accuracy" in objectives


@register_strategy("predictor-guided")
class PredictorGuided(ArchiveStrategy):
    """Surrogate-guided search: expected hypervolume improvement or Thompson sampling (see the module docstring)."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 ensemble: int = 5, candidates: int = 60, hidden: int = 64, steps: int = 200,
                 random_share: float = 0.1, acquisition: str = "auto", surrogate: str = "linear"):
        super().__init__(space, population, seed, mutate_prob)
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {surrogate!r}")
        self.surrogate = surrogate
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be 0..1, got {random_share}")
        self.ensemble, self.candidates, self.hidden, self.steps = int(ensemble), int(candidates), int(hidden), int(steps)
        self.random_share = float(random_share)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
        self.acquisition = acquisition
        self._exact: tuple[Any, Any, tuple[str, ...]] | None = None

    def bind(self, *, predictor: Any, evaluator: Any, constraints: Any,
             objectives: Sequence[str] = ("accuracy", "latency_ms")) -> None:
        objectives = tuple(objectives)
        if self.acquisition == "ehvi" and not _ehvi_fits(objectives):
            raise SearchError(f"acquisition ehvi needs two objectives, accuracy and one more; this run has "
                             f"{', '.join(objectives)} (use acquisition=front)")
        self._exact = (predictor, constraints, objectives)

    def _acquisition(self) -> str:
        """``auto``: expected hypervolume improvement where it applies (bound to a run whose objectives are
        accuracy and one exact measure), the Thompson-sampled front elsewhere."""
        if self.acquisition == "auto":
            return "ehvi" if self._exact is not None and _ehvi_fits(self._exact[2]) else "front"
        if self.acquisition == "ehvi" and self._exact is None:
            raise SearchError("acquisition ehvi needs the strategy bound to a run (the LUT's exact latency); "
                             "a search run binds it, a hand-driven one must call bind() or use acquisition=front")
        return self.acquisition

    def _first_batch(self) -> list[SpaceArch]:
        """Bound: the first generation (nothing to learn from yet) spread evenly over the values of the exact
        objective (latency when it is one) among random archs that meet the constraints, so no evaluation is
        spent over the budget and the front's whole range is sampled from the start."""
        before = set(self.seen)
        wanted = self._capped(self.population) or self.population  # propose's limit, if less
        # the pool is not what is proposed: 20 archs per proposal wanted
        pool = self._fresh(lambda: self.space.sample(self.rng), 20 * wanted, capped=False)
        self.seen = before  # only what is picked below counts as proposed
        objectives = self._exact[2]
        F, cv = self._exact_scores(pool, np.full((len(pool), len(objectives)), -np.inf))
        exact = [o for o in objectives if o != "accuracy"]
        other = objectives.index("latency_ms" if "latency_ms" in exact else exact[0]) if exact else 0
        feasible = [int(i) for i in np.flatnonzero(cv <= 0)]
        chosen: list[int] = []
        if len(feasible) > self.population:
            values = F[feasible, other]
            free = np.ones(len(feasible), bool)
            for target in np.linspace(values.min(), values.max(), self.population):
                j = int(np.argmin(np.where(free, np.abs(values - target), np.inf)))
                free[j] = False
                chosen.append(feasible[j])
        else:
            chosen = feasible
        archs = [pool[i] for i in self._then_least_violating(chosen, cv)]
        self.seen.update(a.id for a in archs)
        return archs

    def _ehvi_order(self, cands: list[SpaceArch], mean: np.ndarray, std: np.ndarray) -> np.ndarray | None:
        """The batch picked greedily by expected hypervolume improvement (accuracy from the surrogate's mean
        and spread, the other objective exact), each pick added to the front at its predicted mean before the
        next (the "Kriging believer" batch rule). None when no candidate meets the constraints."""
        objectives = self._exact[2]
        ai, oi = objectives.index("accuracy"), 1 - objectives.index("accuracy")
        F, cv = self._exact_scores(cands, mean[:, :-1])
        ok = np.flatnonzero(cv <= 0)
        if not len(ok):
            return None
        mu, sigma = mean[ok, ai], std[ok, ai]
        exact = F[ok, oi]
        seen = self.targets[self.targets[:, -1] <= 0][:, [ai, oi]]
        front = seen[non_dominated_fronts(seen)[0]] if len(seen) else np.zeros((0, 2))  # all the staircase needs
        pts = np.concatenate([seen, np.column_stack([mu, exact])])
        span = np.ptp(pts, 0) + 1e-9
        ref = (float(pts[:, 0].max() + 0.1 * span[0]), float(pts[:, 1].max() + 0.1 * span[1]))
        budget = getattr(self._exact[1], "latency_limit_ms", None)
        if objectives[oi] == "latency_ms" and budget:
            ref = (ref[0], float(budget))
        picked: list[int] = []
        free = np.ones(len(ok), bool)
        for _ in range(min(self.population, len(ok))):
            gain = np.where(free, expected_hv_improvement(mu, sigma, exact, front, ref), -np.inf)
            j = int(np.argmax(gain))
            picked.append(j)
            free[j] = False
            front = np.vstack([front, [[mu[j], exact[j]]]])
        return np.array(self._then_least_violating([int(i) for i in ok[picked]], cv), int)

    def _then_least_violating(self, chosen: list[int], cv: np.ndarray) -> list[int]:
        """``chosen``, filled up to ``population`` with the least violating others (too few were feasible)."""
        taken = set(chosen)
        rest = [int(i) for i in np.argsort(cv, kind="stable") if int(i) not in taken]
        return (chosen + rest)[:self.population]

    def _exact_scores(self, cands: list[SpaceArch], sampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives and violations of ``cands`` with the LUT's latency and the exact static measures,
        the surrogate's sampled accuracy in the accuracy column."""
        from hwnas.search.problem import OBJECTIVES
        from hwnas.search.records import SearchRecord

        predictor, constraints, objectives = self._exact
        acc = -sampled[:, objectives.index("accuracy")]  # F holds -accuracy
        records = [SearchRecord.of(a, ms, x) for a, ms, x in zip(cands, predictor.predict_many(cands), acc)]
        F = np.array([[-OBJECTIVES[o] * getattr(r, o) for o in objectives] for r in records], float)
        return F, np.array([constraints.violation(r) for r in records], float)

    def _surrogate(self) -> Surrogate:
        """Fitted to what was evaluated, failed evaluations left out (their accuracy 0 says nothing about the
        arch's, and would pull a linear model far more than the bootstrapped MLPs)."""
        ok = self.targets[:, -1] < FAILED_VIOLATION
        if not ok.any():
            ok[:] = True
        archs = [a for a, keep in zip(self.archive_archs(), ok) if keep]
        X, Y = self.space.encode_many(archs).astype(float), self.targets[ok]
        if self.surrogate == "linear":
            return BayesianLinear(X, Y)
        seed = generation_seed(self.seed, self.generation)  # refitted alike on resume
        return MLPEnsemble(X, Y, self.ensemble, self.hidden, self.steps, seed)

    def _violation(self, predicted: np.ndarray) -> np.ndarray:
        """Predicted violations, 0 where within the surrogate's noise of feasible: half the smallest violation
        seen so far (all 0 when nothing seen has violated a constraint)."""
        seen = self.targets[:, -1]
        if not (seen > 0).any():
            return np.zeros_like(predicted)
        tol = 0.5 * seen[seen > 0].min()
        return np.where(predicted <= tol, 0.0, predicted)

    def _candidates(self) -> list[SpaceArch]:
        pool: list[SpaceArch] = []
        n_random = int(round(self.random_share * self.candidates * self.population))
        for _ in range(self.candidates * self.population - n_random):
            a = self.pop[self.rng.randrange(len(self.pop))]
            if self.rng.random() < 0.5:
                a = a.crossover(self.pop[self.rng.randrange(len(self.pop))], self.rng)
            pool.append(a.mutate(self.rng, self.mutate_prob))
        pool += [self.space.sample(self.rng) for _ in range(n_random)]
        fresh, ids = [], set()
        for a in pool:
            if a.id not in self.seen and a.id not in ids:
                ids.add(a.id)
                fresh.append(a)
        return fresh

    def ask(self) -> list[SpaceArch]:
        acquisition = self._acquisition()
        if len(self.archive) < self.population:  # nothing to learn from yet
            return self._first_batch() if self._exact is not None else self._random_batch(self.population)
        model = self._surrogate()
        cands = self._candidates()
        if len(cands) <= self.population:
            return self._fresh(lambda: cands.pop() if cands else self.space.sample(self.rng), self.population)
        X = self.space.encode_many(cands).astype(float)
        order = self._ehvi_order(cands, *model.mean_std(X)) if acquisition == "ehvi" else None
        if order is not None:
            chosen = [cands[i] for i in order]
            self.seen.update(a.id for a in chosen)
            return chosen
        # Thompson sampling: one posterior draw per candidate, seeded by the generation (so resume repeats it)
        sampled = model.draws(X, 1, np.random.default_rng(generation_seed(self.seed, self.generation) + 1))[0]
        if self._exact is not None:
            F, cv = self._exact_scores(cands, sampled[:, :-1])
        else:
            F, cv = sampled[:, :-1], self._violation(sampled[:, -1])
        if acquisition != "thompson" and len(self.pop):
            # ranked together with the evaluated elite (its real objectives): the candidates whose sampled
            # objectives would extend the current front come first (a Thompson-sampled front improvement)
            rank, crowd = rank_and_crowding(np.vstack([self.F, F]), np.concatenate([self.cv, cv]))
            n0 = len(self.pop)
            order = np.lexsort((np.arange(len(cands)), -crowd[n0:], rank[n0:]))[:self.population]
        else:
            order = survive(F, cv, self.population)
        chosen = [cands[i] for i in order]
        self.seen.update(a.id for a in chosen)
        return chosen
