"""Multi-objective Bayesian optimisation with constraints, through Optuna's ask/tell interface.

Every gene is a categorical parameter; every objective column is an Optuna direction (all minimised,
as a strategy's objectives are) and the constraint violation is an Optuna constraint (``<= 0``
feasible). Optuna's multivariate TPE sampler proposes a whole generation at once (the constant-liar
heuristic keeps a batch diverse). Optuna's Gaussian-process sampler was tried and left out: on the demo
space's 35 categorical genes it took 113 s to propose one generation of 10 (TPE: ~0.1 s). Exact resume: the strategy keeps every
evaluated arch with its objectives in ``state_dict()`` and rebuilds an in-memory study from them before
each generation, with the sampler seeded by the generation, so a run resumed from the run store asks
exactly what an uninterrupted one would. Needs ``pip install 'hwnas[bayes]'`` (optuna >= 5).
"""
from __future__ import annotations

import warnings
from typing import Any

from hwnas.search.strategies import ArchiveStrategy, generation_seed, register_strategy
from hwnas.spaces.base import Space, SpaceArch

def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ValueError("the bayesian strategy needs Optuna: pip install 'hwnas[bayes]' (optuna >= 5)") from None
    if int(optuna.__version__.split(".")[0]) < 5:
        raise ValueError(f"the bayesian strategy needs optuna >= 5 (trial constraints), found {optuna.__version__}: "
                         f"pip install -U 'optuna>=5'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@register_strategy("bayesian")
class Bayesian(ArchiveStrategy):
    """Optuna's multivariate TPE over the genes, a generation per ask (see the module docstring)."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None):
        super().__init__(space, population, seed, mutate_prob)
        self.optuna = _optuna()
        dist = self.optuna.distributions.CategoricalDistribution
        self.dists = {f"g{i}": dist(list(range(u + 1))) for i, u in enumerate(space.gene_upper_bounds())}

    def _study(self) -> Any:
        optuna, seed = self.optuna, generation_seed(self.seed, self.generation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                                 n_startup_trials=self.population)
            study = optuna.create_study(directions=["minimize"] * (self.targets.shape[1] - 1), sampler=sampler)
            study.add_trials([
                optuna.trial.create_trial(params={f"g{i}": g for i, g in enumerate(genes)}, distributions=self.dists,
                                          values=row[:-1].tolist(), constraints={"violation": float(row[-1])})
                for genes, row in zip(self.archive, self.targets)])
        return study

    def ask(self) -> list[SpaceArch]:
        if len(self.archive) < self.population:  # nothing to model yet: a uniform first generation
            return self._random_batch(self.population)
        study, out = self._study(), []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(20 * self.population):
                if len(out) == self.population:
                    break
                trial = study.ask(self.dists)  # left running: the constant liar steers the next asks away
                arch = self.space.from_genes([trial.params[f"g{i}"] for i in range(len(self.dists))])
                if arch.id not in self.seen:
                    self.seen.add(arch.id)
                    out.append(arch)
        return out + self._random_batch(self.population - len(out))
