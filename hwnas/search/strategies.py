"""Search strategies behind one ask/tell interface; they know nothing of LUTs or torch.

``ask()`` proposes architectures, the caller evaluates them anywhere, and
``tell(archs, F, cv)`` returns minimisation objectives ``F`` [N, M] and
constraint violations ``cv`` [N]. ``state_dict()`` is JSON, RNG included, so a
run restored from it continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.core.errors import SearchError
from hwnas.core.registry import Registry
from hwnas.search.pareto import rank_and_crowding, survive
from hwnas.spaces.base import Space, SpaceArch, kind_part, macs_m

# set by the run loop, never by a user's --strategy-option
RESERVED = ("population", "seed")
STRATEGIES = Registry("strategy", "hwnas.strategies", SearchError, hidden=("space", *RESERVED))
GROUP = STRATEGIES.group  # plugins: [project.entry-points."hwnas.strategies"] name = "module:Class"
# built in, but in their own modules (they import torch or optuna): named here, imported when first asked for
for _name, _target in {"reinforce": "hwnas.search.reinforce:Reinforce",
                       "predictor-guided": "hwnas.search.guided:PredictorGuided",
                       "bayesian": "hwnas.search.bayes:Bayesian",
                       "differentiable": "hwnas.search.differentiable:Differentiable"}.items():
    STRATEGIES.register(_name, _target)


def register_strategy(name: str) -> Callable:
    """Class decorator: a built-in strategy called ``name`` (its ``name`` attribute set to it)."""
    def deco(cls):
        cls.name = name
        return STRATEGIES.register(name, cls)

    return deco


def _strategy_class(name: str) -> Callable[..., "Strategy"]:
    cls = STRATEGIES.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise SearchError(f"strategy plugin {name!r} ({STRATEGIES.where(name)[1]}) is not a hwnas Strategy subclass")
    cls.name = name
    return cls


def strategy_options(name: str) -> dict[str, Any]:
    """The options ``--strategy-option`` may set for strategy ``name``, with their defaults."""
    _strategy_class(name)
    return STRATEGIES.options(name) or {}


def create_strategy(name: str, space: Space, **options: Any) -> "Strategy":
    """``options``: the run's population and seed, plus the user's strategy options; an unknown or
    mistyped key is refused with the ones the strategy takes (never silently ignored)."""
    cls = _strategy_class(name)
    allowed = strategy_options(name)
    STRATEGIES.check_options(name, options)
    for key, value in options.items():
        if key not in allowed or value is None:
            continue
        default = allowed[key]
        numeric = key.endswith("_prob") or (isinstance(default, (int, float)) and not isinstance(default, bool))
        if numeric and (isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value)):
            raise SearchError(f"strategy option {key}={value!r} must be a finite number")
        if isinstance(default, int) and not isinstance(default, bool) and (value != int(value) or value < 1):
            raise SearchError(f"strategy option {key}={value!r} must be a whole number >= 1")
        if key.endswith("_prob") and not 0.0 <= value <= 1.0:
            raise SearchError(f"strategy option {key}={value!r} is a probability: 0 to 1")
    try:
        return cls(space, **options)
    except (TypeError, ValueError) as e:
        raise SearchError(f"strategy {name!r}: {e}") from None


def list_strategies() -> list[str]:
    return STRATEGIES.names()


class Strategy:
    """Base: a population of evaluated (arch, F, cv), a seeded RNG, and JSON state."""

    name = "base"

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None):
        if population < 2:
            raise SearchError(f"population must be >= 2, got {population}")
        self.space = space
        self.population = population
        self.seed = seed
        # Deb's rule for mutation: one gene in n on average. Measured on mbv3 (tools/bench_search.py, 5 seeds):
        # 0.15 per gene reached median HV 121 against 140 at 1/47.
        self.mutate_prob = mutate_prob if mutate_prob is not None else 1.0 / len(space.gene_upper_bounds())
        self.rng = random.Random(seed)
        self.pop: list[SpaceArch] = []
        self.F = np.zeros((0, 0))
        self.cv = np.zeros(0)
        self.seen: set[str] = set()
        self._id_cache: dict[bytes, str] = {}  # gene row -> arch id (see _fresh_genes); not state: rebuilt as used
        self.feasibility: Any = None  # set by restrict(): proposals then stay within the checkable constraints

    # -- interface -----------------------------------------------------------
    def ask(self) -> list[SpaceArch]:
        raise NotImplementedError

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        raise NotImplementedError

    def bind(self, *, predictor: Any, evaluator: Any, constraints: Any,
             objectives: Sequence[str] = ("accuracy", "latency_ms")) -> None:
        """Called once by the run before the first ``ask``: a strategy that needs more than objectives
        (the differentiable one trains inside the evaluator's supernet; predictor-guided prices its
        candidates' latency with the LUT instead of learning it) takes it here and refuses what it cannot
        use. ``objectives`` name the columns of the ``F`` that ``tell`` receives. Most need nothing."""

    def restrict(self, feasibility: Any) -> None:
        """Propose only within ``feasibility``'s limits (hwnas.search.feasible.Feasibility: what the LUT and the
        arch's layers tell before any evaluation). The run calls it when a checkable constraint is set."""
        self.feasibility = feasibility if feasibility is not None and feasibility.active else None

    def propose(self, limit: int | None = None) -> list[SpaceArch]:
        """:meth:`ask`, then every proposal still outside the checkable constraints repaired: the built-in
        strategies resample inside ``ask`` already (their own distribution, then a bounded repair), so this
        catches what a strategy proposes by other means (Optuna's trials, a plugin's ``ask``).

        ``limit``: at most this many evaluations are left (--max-evaluations): the built-in strategies then make
        no more proposals than that (a --population of 100,000 under a cap of 5 made 100,000 first, one at a
        time, for minutes before evaluating any); a plugin's ``ask`` may make more, which the run cuts."""
        self._limit = limit
        try:
            archs = self.ask()
        finally:
            self._limit = None
        if self.feasibility is None or not archs:
            return archs
        v = self.feasibility.violations(archs)
        if not (v > 0).any():
            return archs
        taken = {a.id for a, x in zip(archs, v) if x <= 0}
        out = []
        for a, x in zip(archs, v):
            if x > 0:
                a = self._repair(a, self.seen | taken)
                taken.add(a.id)
                self.seen.add(a.id)
            out.append(a)
        return out

    def _repair(self, arch: SpaceArch, seen: set[str]) -> SpaceArch:
        from hwnas.search.feasible import repair

        feas = self.feasibility
        return repair(arch, feas.violation, self.rng, self.mutate_prob, feas.anchor(), seen)

    # -- helpers -------------------------------------------------------------
    def _capped(self, n: int) -> int:
        """``n`` proposals, or fewer when :meth:`propose` was given a smaller ``limit``."""
        limit = getattr(self, "_limit", None)
        return n if limit is None else max(0, min(n, limit))

    def _fresh(self, make: Callable[[], SpaceArch], n: int, capped: bool = True) -> list[SpaceArch]:
        """``n`` archs from ``make`` not proposed before (falls back to repeats in a tiny space). Restricted
        (:meth:`restrict`): an arch outside the checkable constraints is drawn again from ``make`` (the
        strategy's own distribution), up to 50 times, and the least violating draw then repaired. At most
        :meth:`propose`'s ``limit`` unless not ``capped`` (a pool to pick proposals from, not the proposals)."""
        n = self._capped(n) if capped else n
        if self.feasibility is not None:
            return self._fresh_within(make, n)
        out: list[SpaceArch] = []
        for _ in range(n):
            for _attempt in range(50):
                a = make()
                if a.id not in self.seen:
                    break
            self.seen.add(a.id)
            out.append(a)
        return out

    def _fresh_within(self, make: Callable[[], SpaceArch], n: int) -> list[SpaceArch]:
        out: list[SpaceArch] = []
        violation = self.feasibility.violation
        for _ in range(n):
            best: tuple[float, SpaceArch] | None = None
            for _attempt in range(50):
                a = make()
                if a.id in self.seen:
                    continue
                v = violation(a)
                if v <= 0:
                    break
                if best is None or v < best[0]:
                    best = (v, a)
            else:
                a = self._repair(best[1] if best is not None else a, self.seen)
            self.seen.add(a.id)
            out.append(a)
        return out

    def _survive(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        """The elite becomes the best ``population`` of elite + ``archs`` (NSGA-II survival)."""
        F = np.asarray(F, float)
        pool = self.pop + list(archs)
        allF = np.vstack([self.F, F]) if len(self.pop) else F
        allcv = np.concatenate([self.cv, np.asarray(cv, float)])
        keep = survive(allF, allcv, self.population)
        self.pop = [pool[i] for i in keep]
        self.F, self.cv = allF[keep], allcv[keep]

    def _random_batch(self, n: int) -> list[SpaceArch]:
        return self._fresh(lambda: self.space.sample(self.rng), n)

    def _fresh_genes(self, make: Callable[[int], np.ndarray], n: int) -> list[SpaceArch]:
        """:meth:`_fresh` on gene matrices: ``make(k)`` proposes ``k`` canonical gene rows at once, twice as many
        as archs are still wanted; rows whose arch was proposed before are passed over. After 50 rounds, what
        is still wanted is filled with repeats (a tiny space). Only the archs kept are made. At most
        :meth:`propose`'s ``limit``."""
        n = self._capped(n)
        kept: list[np.ndarray] = []
        ids: list[str] = []
        if len(self._id_cache) > 1 << 18:  # a memo only: bounded, so a long run's memory stays that of `seen`
            self._id_cache.clear()
        cache, seen = self._id_cache, self.seen
        for attempt in range(50 if n > 0 else 0):
            G = make(2 * (n - len(ids)))
            rows32 = np.ascontiguousarray(G, dtype=np.int32)
            keys = rows32.view(f"V{rows32.shape[1] * 4}").ravel().tolist()  # one bytes object per row
            new = [i for i, k in enumerate(keys) if k not in cache]
            if new:
                cache.update(zip([keys[i] for i in new], self.space.gene_ids(G[new])))
            rows = []
            bad = self._genes_outside(G, attempt)
            for i, key in enumerate(keys):
                aid = cache[key]
                if (aid not in seen and not bad[i]) or attempt == 49:
                    seen.add(aid)
                    rows.append(i)
                    ids.append(aid)
                    if len(ids) == n:
                        break
            kept.append(G[rows])
            if len(ids) == n:
                archs = self.space.archs_from_genes(np.concatenate(kept), ids)
                if self.feasibility is not None and attempt == 49:  # what the last round kept unchecked
                    archs = self._repaired_last(archs)
                return archs
        return []  # n == 0 (the last round keeps repeats, so n > 0 returned above)

    def _genes_outside(self, G: np.ndarray, attempt: int) -> np.ndarray:
        """Per gene row: outside the checkable constraints (restricted runs only; the last round keeps all)."""
        if self.feasibility is None or attempt == 49:
            return np.zeros(len(G), bool)
        v = self.feasibility.genes_violations(G)
        if v is None:
            v = self.feasibility.violations(self.space.archs_from_genes(G))
        return v > 0

    def _repaired_last(self, archs: list[SpaceArch]) -> list[SpaceArch]:
        v = self.feasibility.violations(archs)
        out = []
        for a, x in zip(archs, v):
            if x > 0:
                a = self._repair(a, self.seen)
                self.seen.add(a.id)
            out.append(a)
        return out

    def _np_rng(self) -> np.random.Generator:
        """A numpy generator seeded from the strategy's RNG: vectorised steps draw from it, and the JSON state
        (the Python RNG alone) still restores a run exactly."""
        return np.random.default_rng(self.rng.getrandbits(64))

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"strategy": self.name, "population": self.population, "seed": self.seed,
                "rng": [version, list(internal), gauss], "pop": [a.to_dict() for a in self.pop],
                "F": self.F.tolist(), "cv": self.cv.tolist(), "seen": sorted(self.seen), **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise ValueError(f"state is for strategy {state.get('strategy')!r}, not {self.name!r}")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.seed = int(state.get("seed", self.seed))
        self.pop = [self.space.arch_from_dict(d) for d in state["pop"]]
        self.F = np.asarray(state["F"], float).reshape(len(self.pop), -1) if self.pop else np.zeros((0, 0))
        self.cv = np.asarray(state["cv"], float)
        self.seen = set(state["seen"])
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


def generation_seed(seed: int, generation: int) -> int:
    """A seed for one generation's model fit, 0 <= s < 2**32 (numpy's range) for any run seed."""
    return int(np.random.SeedSequence([seed % 2**63, generation]).generate_state(1)[0])


class ArchiveStrategy(Strategy):
    """Keeps every evaluated arch (its genes) with its objectives and violation, and a generation count:
    what model-based strategies refit on each generation. All of it is in the state, so a resumed run
    refits the same model."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None):
        super().__init__(space, population, seed, mutate_prob)
        self.generation = 0
        self.archive: list[list[int]] = []
        self.targets = np.zeros((0, 0))  # [evaluated, objectives + 1]: the violation last

    def archive_archs(self) -> list[SpaceArch]:
        return [self.space.from_genes(g) for g in self.archive]

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        rows = np.column_stack([np.asarray(F, float), np.asarray(cv, float)])
        self.archive += [a.genes() for a in archs]
        self.targets = np.vstack([self.targets, rows]) if self.targets.size else rows
        self._survive(archs, F, cv)
        self.generation += 1

    def _extra_state(self) -> dict[str, Any]:
        return {"generation": self.generation, "archive": self.archive, "targets": self.targets.tolist()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        self.archive = [list(g) for g in state["archive"]]
        self.targets = np.asarray(state["targets"], float).reshape(len(self.archive), -1) if self.archive \
            else np.zeros((0, 0))


@register_strategy("nsga2")
class NSGA2(Strategy):
    """NSGA-II (Deb et al. 2002) with constraint-domination, binary tournaments, SpaceArch crossover/mutation."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 crossover_prob: float = 0.9):
        super().__init__(space, population, seed, mutate_prob)
        self.crossover_prob = crossover_prob

    def _tournament(self, rank: np.ndarray, crowd: np.ndarray) -> int:
        i, j = self.rng.randrange(len(self.pop)), self.rng.randrange(len(self.pop))
        if rank[i] != rank[j]:
            return i if rank[i] < rank[j] else j
        if crowd[i] != crowd[j]:
            return i if crowd[i] > crowd[j] else j
        return i if self.rng.random() < 0.5 else j

    def _project(self, arch: SpaceArch) -> SpaceArch:
        """Where a proposal must lie (subclasses restrict the space; here: anywhere)."""
        return arch

    def _project_genes(self, G: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """:meth:`_project` on a gene matrix."""
        return G

    def _genes_project_like_archs(self) -> bool:
        """The gene-matrix path only when it restricts as :meth:`_project` does: a subclass (a plugin) that
        overrides only ``_project``, the documented hook, keeps the per-arch path and its restriction."""
        cls = type(self)
        return cls._project is NSGA2._project or cls._project_genes is not NSGA2._project_genes

    def ask(self) -> list[SpaceArch]:
        if not self.pop:
            return self._fresh(lambda: self._project(self.space.sample(self.rng)), self.population)
        rank, crowd = rank_and_crowding(self.F, self.cv)
        if has_gene_variation(self.space) and self._genes_project_like_archs():
            return self._ask_genes(rank, crowd)

        def child() -> SpaceArch:
            a = self.pop[self._tournament(rank, crowd)]
            if self.rng.random() < self.crossover_prob:
                a = a.crossover(self.pop[self._tournament(rank, crowd)], self.rng)
            return self._project(a.mutate(self.rng, self.mutate_prob))

        return self._fresh(child, self.population)

    def _ask_genes(self, rank: np.ndarray, crowd: np.ndarray) -> list[SpaceArch]:
        """The generation made on the population's gene matrix: tournaments, crossover and mutation of all
        children at once (the space's ``crossover_genes`` / ``mutate_genes``), archs made only for the kept."""
        sp, rng = self.space, self._np_rng()
        P = sp.gene_matrix(self.pop)

        def tournament(k: int) -> np.ndarray:
            i, j = rng.integers(len(P), size=k), rng.integers(len(P), size=k)
            coin = rng.random(k) < 0.5
            return np.where(rank[i] != rank[j], np.where(rank[i] < rank[j], i, j),
                            np.where(crowd[i] != crowd[j], np.where(crowd[i] > crowd[j], i, j),
                                     np.where(coin, i, j)))

        def children(k: int) -> np.ndarray:
            C = P[tournament(k)]
            other = P[tournament(k)]
            cross = rng.random(k) < self.crossover_prob
            if cross.any():
                C[cross] = sp.crossover_genes(C[cross], other[cross], rng)
            return self._project_genes(sp.mutate_genes(C, self.mutate_prob, rng), rng)

        return self._fresh_genes(children, self.population)

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        self._survive(archs, F, cv)


def has_gene_variation(space: Any) -> bool:
    """Whether ``space``'s kind varies whole gene matrices (its ``KindParts.gene_ops``: the MobileNetV3 kind
    does); other spaces are varied arch by arch with ``SpaceArch.crossover`` / ``SpaceArch.mutate``."""
    return bool(kind_part(space, "gene_ops"))


@register_strategy("progressive")
class Progressive(NSGA2):
    """NSGA-II over a sub-space that widens on a schedule (the seeds' ``ProgressiveSearcher``).

    Phase ``k`` (0-based) of ``phases`` lasts ``generations_per_phase`` generations; the last one is the whole
    space, and the population carries over from phase to phase, so the search first settles the cheap end
    of the space and then grows into the rest.

    * A MobileNetV3 space (depth/kernel/expand genes): phase ``k`` allows, per depth/kernel/expand gene of
      ``n`` choices, those up to index ``ceil((k+1)(n-1)/phases)`` (a space lists them small to large: with 3
      phases and 3 choices, the two smallest, then all); resolution and width are free throughout.
    * Any other space (cells, plugins): the complexity measure is the arch's MACs, counted from its layers
      through the space protocol (a cell's live weighted edges are what it computes), and phase ``k`` allows
      the archs up to the ``(k+1)/phases`` quantile of the MACs of 256 archs sampled with the run's seed."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 crossover_prob: float = 0.9, phases: int = 3, generations_per_phase: int = 5):
        super().__init__(space, population, seed, mutate_prob, crossover_prob)
        if int(phases) < 1:
            raise ValueError(f"phases must be >= 1, got {phases}")
        self.phases, self.generations_per_phase = int(phases), int(generations_per_phase)
        self.generation = 0
        self._quantiles: list[float] | None = None
        self._gene_caps = kind_part(space, "progressive_caps")
        if self._gene_caps is None:  # complexity caps (computed from a sampler of its own: the
            rng = random.Random(seed)            # strategy's RNG stream is the same with or without them)
            macs = sorted(complexity(space.sample(rng)) for _ in range(256))
            self._quantiles = [macs[min(len(macs) - 1, math.ceil((k + 1) / self.phases * len(macs)) - 1)]
                               for k in range(self.phases - 1)] + [math.inf]

    def phase(self) -> int:
        return min(self.phases - 1, self.generation // self.generations_per_phase)

    def caps(self) -> list[int]:
        """The highest choice index each gene may take in the current phase (kinds with a gene schedule)."""
        return self._gene_caps(self.space, self.phase(), self.phases)

    def complexity_cap(self) -> float:
        """The most MACs (millions) an arch may have in the current phase (spaces without gene caps)."""
        return self._quantiles[self.phase()] if self._quantiles is not None else math.inf

    def _project(self, arch: SpaceArch) -> SpaceArch:
        """Genes past the phase's cap are drawn again within it (clamping would pile them on the cap); an arch
        over the phase's complexity is repaired into it (hwnas.search.feasible.repair, towards the smallest)."""
        if self._quantiles is not None:
            cap = self.complexity_cap()
            if cap == math.inf or complexity(arch) <= cap:
                return arch
            from hwnas.search.feasible import repair

            return repair(arch, lambda a: max(0.0, complexity(a) / max(cap, 1e-12) - 1.0), self.rng,
                          self.mutate_prob, self.space.smallest(), self.seen)
        caps = self.caps()
        return self.space.from_genes([g if g <= c else self.rng.randint(0, c) for g, c in zip(arch.genes(), caps)])

    def _project_genes(self, G: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        caps = np.broadcast_to(np.asarray(self.caps()), G.shape)
        over = G > caps
        if over.any():
            G = G.copy()
            G[over] = rng.integers(0, caps[over] + 1)
        return self.space.canonical_genes(G)

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        super().tell(archs, F, cv)
        self.generation += 1

    def _extra_state(self) -> dict[str, Any]:
        return {"generation": self.generation}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])


complexity = macs_m  # the complexity measure every space kind has


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Aging evolution (Real et al. 2019): tournament of ``sample_size``, mutate the winner, drop the oldest.

    With several objectives the tournament winner is the best by constraint-domination rank.
    """

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 sample_size: int = 10):
        super().__init__(space, population, seed, mutate_prob)
        self.sample_size = sample_size

    def ask(self) -> list[SpaceArch]:
        if not self.pop:
            return self._random_batch(self.population)

        def child() -> SpaceArch:
            idx = [self.rng.randrange(len(self.pop)) for _ in range(min(self.sample_size, len(self.pop)))]
            rank, crowd = rank_and_crowding(self.F[idx], self.cv[idx])
            best = idx[int(np.lexsort((-crowd, rank))[0])]
            return self.pop[best].mutate(self.rng, self.mutate_prob)

        return self._fresh(child, self.population)

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        self.pop = (self.pop + list(archs))[-self.population:]  # oldest first, so the oldest age out
        allF = np.vstack([self.F, F]) if self.F.size else np.asarray(F, float)
        self.F = allF[-self.population:]
        self.cv = np.concatenate([self.cv, cv])[-self.population:]


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform samples of the space: the baseline every strategy must beat."""

    def ask(self) -> list[SpaceArch]:
        return self._random_batch(self.population)

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        pass
