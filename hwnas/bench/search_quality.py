"""Does a search find better networks than chance at equal latency? The end-to-end proof of the accuracy axis.

Search the space under a budget in the middle of its latency range (the median arch's) with an evaluator, take the ``top``
most accurate archs of the front, pair each with a random arch of the same predicted latency (within
``tolerance``), train all of them from scratch with the reference recipe (several seeds, the test split)
and compare. The searched archs win only if they beat their latency twins by more than the seed-to-seed
spread of a training. Used by ``tools/bench_search_quality.py``.
"""
from __future__ import annotations

import hashlib
import json
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.core.errors import InputError
from hwnas.bench.reference import Recipe, train_reference
from hwnas.latency.lut import LUT
from hwnas.latency.predict import Predictor, latency_predictor
from hwnas.search.problem import Constraints
from hwnas.search.records import SearchRecord
from hwnas.search.run import run_search, searchable_space
from hwnas.spaces.base import Space, SpaceArch
from hwnas.search.store import RunStore


@dataclass
class Pick:
    """One trained arch: searched (from the front) or its random latency twin."""

    kind: str  # "searched" | "random"
    arch: dict[str, Any]
    arch_id: str
    resolution: int
    latency_ms: float            # predicted
    evaluator_score: float | None  # the search's accuracy signal (None for the random twins)
    test_acc: list[float]        # one per training seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_acc)


@dataclass
class SearchQuality:
    space: str
    lut: str
    evaluator: str
    evaluator_options: dict[str, Any]
    budget_ms: float
    latency_range_ms: tuple[float, float]
    tolerance: float
    recipe: dict[str, Any]
    seeds: list[int]
    search: dict[str, Any]
    picks: list[Pick] = field(default_factory=list)

    def group(self, kind: str) -> list[Pick]:
        return [p for p in self.picks if p.kind == kind]

    def summary(self) -> dict[str, Any]:
        """Means, the paired gain, and the seed-to-seed spread (pooled sd over seeds of one arch)."""
        s, r = self.group("searched"), self.group("random")
        gains = [a.mean - b.mean for a, b in zip(s, r)]
        pooled = statistics.fmean([statistics.variance(p.test_acc) for p in self.picks]) ** 0.5 \
            if len(self.seeds) >= 2 else float("nan")
        gain = statistics.fmean(gains)
        return {"searched_mean": statistics.fmean(p.mean for p in s), "random_mean": statistics.fmean(p.mean for p in r),
                "gain": gain, "pair_gains": gains, "pairs_won": sum(g > 0 for g in gains),
                "gain_se": statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) >= 2 else float("nan"),
                "seed_sd": pooled, "beats_seed_spread": bool(gain > pooled),
                "searched_latency_ms": statistics.fmean(p.latency_ms for p in s),
                "random_latency_ms": statistics.fmean(p.latency_ms for p in r)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary()
        return d


def budget_in_the_middle(predictor: Predictor, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(budget, fastest, largest): the median predicted latency of ``n`` random archs (where the space's
    archs are densest, so random archs of every resolution compete there), the fastest arch's and the
    largest arch's."""
    fastest = predictor.fastest()[1]
    largest = float(predictor.predict(predictor.space.largest()))
    rng = random.Random(seed)
    median = float(statistics.median(predictor.predict_many([predictor.space.sample(rng) for _ in range(n)])))
    return median, fastest, largest


def latency_twin(space: Space, predictor: Predictor, target_ms: float, rng: random.Random,
                 exclude: set[str], tolerance: float = 0.05, tries: int = 200, batch: int = 500) -> SpaceArch:
    """A uniformly random arch whose predicted latency is within ``tolerance`` of ``target_ms`` (rejection
    sampling: the first hit of random draws, so the twin is random among the archs of that latency)."""
    for _ in range(tries):
        archs = [space.sample(rng) for _ in range(batch)]
        lat = predictor.predict_many(archs)
        for a, t in zip(archs, lat):
            if abs(t / target_ms - 1) <= tolerance and a.id not in exclude:
                return a
    raise InputError(f"no random arch of {space.name!r} is predicted within ±{tolerance:.0%} of {target_ms:.3f} ms "
                     f"after {tries * batch} draws; widen --tolerance")


def _top_of(front: Sequence[SearchRecord], records: Sequence[SearchRecord], top: int,
            budget_ms: float) -> list[SearchRecord]:
    """The ``top`` most accurate archs of the front; a front shorter than that is topped up with the most
    accurate other archs under the budget (the front of a flat accuracy signal can be a handful)."""
    chosen = sorted(front, key=lambda r: (-r.accuracy, r.latency_ms))[:top]
    ids = {r.arch_id for r in chosen}
    rest = sorted((r for r in records if r.arch_id not in ids and r.latency_ms <= budget_ms),
                  key=lambda r: (-r.accuracy, r.latency_ms))
    return chosen + rest[:top - len(chosen)]


def run_search_quality(lut_path: str | Path, workdir: str | Path, *, evaluator: str,
                       evaluator_options: dict[str, Any] | None = None, recipe: Recipe = Recipe(),
                       seeds: Sequence[int] = (0, 1, 2), top: int = 5, tolerance: float = 0.05,
                       budget_ms: float | None = None, population: int = 24, generations: int = 15, seed: int = 0,
                       workers: int = 2, space: Space | None = None, progress: bool = True,
                       log: Callable[[str], None] = print) -> SearchQuality:
    """Search, pick, twin, train (cached in ``workdir`` with the reference's trainings), compare."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lut = LUT.load(lut_path)
    space = searchable_space(lut, lut_path, space)
    predictor = latency_predictor(lut, space)
    middle, fastest, largest = budget_in_the_middle(predictor)
    budget = float(budget_ms) if budget_ms is not None else round(middle, 4)
    options = dict(evaluator_options or {})
    key = json.dumps([str(lut_path), lut.fingerprint, evaluator, options, budget, population, generations, seed,
                      space.digest], sort_keys=True, default=str)
    out = workdir / f"search-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    log(f"search: {evaluator}{' ' + json.dumps(options) if options else ''}, budget {budget:.3f} ms (predicted range {fastest:.3f}-{largest:.3f} ms), "
        f"{generations} generations x {population}, seed {seed} -> {out}")
    result = run_search(lut_path, out, evaluator=evaluator, evaluator_options=options, population=population,
                        generations=generations, seed=seed, constraints=Constraints(budget_ms=budget), space=space,
                        resume=(out / "run.sqlite").exists(), progress=progress,
                        command=f"hwnas.bench.search_quality ({evaluator})")
    store = RunStore(out / "run.sqlite", readonly=True)  # every evaluated record, for a front shorter than top
    try:
        records = list(store.evals(evaluator).values())
    finally:
        store.close()
    chosen = _top_of(result.front, records, top, budget)
    if len(chosen) < top:
        raise InputError(f"the search found only {len(chosen)} archs under {budget:.3f} ms; raise --budget-ms")
    searched = [space.arch_from_dict(r.arch) for r in chosen]
    rng = random.Random(seed + 7919)
    exclude = {a.id for a in searched}
    twins = []
    for a, r in zip(searched, chosen):
        twin = latency_twin(space, predictor, r.latency_ms, rng, exclude, tolerance)
        exclude.add(twin.id)
        twins.append(twin)
    archs = searched + twins
    log(f"training {len(archs)} archs x {len(seeds)} seeds from scratch: {recipe.describe()}")
    runs, _ = train_reference(archs, recipe, list(seeds), workers, cache=workdir, progress=progress)
    lat = predictor.predict_many(archs)
    picks = [Pick("searched" if i < top else "random", a.to_dict(), a.id, a.resolution, float(lat[i]),
                  float(chosen[i].accuracy) if i < top else None, [float(runs[s][i]) for s in seeds])
             for i, a in enumerate(archs)]
    return SearchQuality(space.name, str(lut_path), evaluator, options, budget, (fastest, largest), tolerance,
                         asdict(recipe), list(seeds),
                         {"out": str(out), "population": population, "generations": generations, "seed": seed,
                          "evaluations": result.evaluations, "front_size": len(result.front)}, picks)


def format_quality(q: SearchQuality) -> str:
    lines = [f"{'':8} {'arch':<14} {'res':>3} {'pred. ms':>8} {'score':>7}  test accuracy % per seed  mean",
             "-" * 78]
    for p in q.picks:
        score = "" if p.evaluator_score is None else f"{p.evaluator_score:.4g}"
        lines.append(f"{p.kind:<8} {p.arch_id[:14]:<14} {p.resolution:>3} {p.latency_ms:>8.3f} {score:>7}  "
                     f"{' '.join(f'{v:6.2f}' for v in p.test_acc):<24} {p.mean:6.2f}")
    s = q.summary()
    lines += ["-" * 78,
              f"searched mean {s['searched_mean']:.2f} %  vs  latency-matched random {s['random_mean']:.2f} %: "
              f"gain {s['gain']:+.2f} points (paired, standard error {s['gain_se']:.2f}); "
              f"{s['pairs_won']} of {len(s['pair_gains'])} pairs won",
              f"seed-to-seed spread (sd of one arch's trainings) {s['seed_sd']:.2f} points: the searched archs "
              + ("beat their latency twins by more than that" if s["beats_seed_spread"]
                 else "do NOT beat their latency twins by more than that")]
    return "\n".join(lines)
