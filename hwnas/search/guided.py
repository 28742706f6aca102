"""Predictor-guided search (BANANAS-style; the seeds' ``PredictorGuidedNAS``).

Every generation: fit an ensemble of small MLPs on ``Arch.encode()`` to everything evaluated so far (each
objective column and the constraint violation are outputs), propose many candidates by mutating and
crossing the current elite (plus a few uniform samples), and pick the ``population`` to evaluate by
**Thompson sampling**: each candidate is scored by one ensemble member drawn at random, and NSGA-II
survival on those sampled predictions picks the batch. The ensemble's disagreement is what makes a
member's guess optimistic now and then, so unexplored regions get tried. In a search run the strategy
is bound to the LUT predictor and the constraints (``bind``): every objective but accuracy (latency,
params, MACs, memory) and every violation but a minimum accuracy's are then computed exactly for each
candidate, so only accuracy is guessed and no evaluation is spent on an arch over the budget. Driven
without ``bind`` it learns every column from what it was told. Everything evaluated is in ``state_dict()`` and each fit is seeded by the
generation, so a resumed run refits the same ensemble and continues exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.search.pareto import rank_and_crowding, survive
from hwnas.search.strategies import ArchiveStrategy, generation_seed, register_strategy
from hwnas.space import Arch, SearchSpace


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


@register_strategy("predictor-guided")
class PredictorGuided(ArchiveStrategy):
    """Ensemble-surrogate search with Thompson sampling (see the module docstring)."""

    def __init__(self, space: SearchSpace, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 ensemble: int = 5, candidates: int = 60, hidden: int = 64, steps: int = 200,
                 random_share: float = 0.1, acquisition: str = "front"):
        super().__init__(space, population, seed, mutate_prob)
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be 0..1, got {random_share}")
        self.ensemble, self.candidates, self.hidden, self.steps = int(ensemble), int(candidates), int(hidden), int(steps)
        self.random_share = float(random_share)
        if acquisition not in ("front", "thompson"):
            raise ValueError(f"acquisition must be front or thompson, got {acquisition!r}")
        self.acquisition = acquisition
        self._exact: tuple[Any, Any, tuple[str, ...]] | None = None

    def bind(self, *, predictor: Any, evaluator: Any, constraints: Any,
             objectives: Sequence[str] = ("accuracy", "latency_ms")) -> None:
        self._exact = (predictor, constraints, tuple(objectives))

    def _exact_scores(self, cands: list[Arch], sampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives and violations of ``cands`` with the LUT's latency and the exact static measures,
        the surrogate's sampled accuracy in the accuracy column."""
        from hwnas.search.problem import OBJECTIVES
        from hwnas.search.records import SearchRecord

        predictor, constraints, objectives = self._exact
        acc = -sampled[:, objectives.index("accuracy")]  # F holds -accuracy
        records = [SearchRecord.of(a, ms, x) for a, ms, x in zip(cands, predictor.predict_many(cands), acc)]
        F = np.array([[-OBJECTIVES[o] * getattr(r, o) for o in objectives] for r in records], float)
        return F, np.array([constraints.violation(r) for r in records], float)

    def _surrogate(self) -> tuple[Ensemble, np.ndarray, np.ndarray]:
        X = torch.from_numpy(self.space.encode_many(self.archive_archs())).float()
        mean, std = self.targets.mean(0), self.targets.std(0) + 1e-9
        Y = torch.from_numpy((self.targets - mean) / std).float()
        seed = generation_seed(self.seed, self.generation)  # refitted alike on resume
        return fit_ensemble(X, Y, self.ensemble, self.hidden, self.steps, seed), mean, std

    def _violation(self, predicted: np.ndarray) -> np.ndarray:
        """Predicted violations, 0 where within the surrogate's noise of feasible: half the smallest violation
        seen so far (all 0 when nothing seen has violated a constraint)."""
        seen = self.targets[:, -1]
        if not (seen > 0).any():
            return np.zeros_like(predicted)
        tol = 0.5 * seen[seen > 0].min()
        return np.where(predicted <= tol, 0.0, predicted)

    def _candidates(self) -> list[Arch]:
        pool: list[Arch] = []
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

    def ask(self) -> list[Arch]:
        if len(self.archive) < self.population:  # nothing to learn from yet
            return self._random_batch(self.population)
        net, mean, std = self._surrogate()
        cands = self._candidates()
        if len(cands) <= self.population:
            return self._fresh(lambda: cands.pop() if cands else self.space.sample(self.rng), self.population)
        X = torch.from_numpy(self.space.encode_many(cands)).float()
        with torch.no_grad():
            preds = net(X).numpy() * std + mean  # [members, candidates, outputs]
        pick = np.array([self.rng.randrange(self.ensemble) for _ in cands])
        sampled = preds[pick, np.arange(len(cands))]
        if self._exact is not None:
            F, cv = self._exact_scores(cands, sampled[:, :-1])
        else:
            F, cv = sampled[:, :-1], self._violation(sampled[:, -1])
        if self.acquisition == "front" and len(self.pop):
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
