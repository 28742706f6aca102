"""Proposals inside the constraints that need no evaluation: latency from the LUT, params, MACs, memory, layers.

Every one of them is known before an arch is evaluated, so an arch that misses one is never worth an
evaluation (with the ``train`` evaluator that is minutes of work). :class:`Feasibility` prices archs on
those limits (the same relative violation as :class:`~hwnas.search.problem.Constraints`, accuracy left
out); :func:`repair` moves an arch into them with bounded effort. A minimum accuracy is the one
constraint only an evaluation can check.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.search.problem import Constraints
from hwnas.search.records import SearchRecord

# constraint field -> record field, for the limits known before evaluating
STATIC = {"budget_ms": "latency_ms", "max_params_m": "params_m", "max_macs_m": "macs_m",
          "max_memory_mb": "memory_mb", "max_layers": "layers"}
# every constraint, the record field it limits, and its direction (+1: an upper limit)
ALL_LIMITS = {**{k: (v, +1) for k, v in STATIC.items()}, "min_accuracy": ("accuracy", -1)}

REPAIR_STEPS = 60  # hill-climbing steps of repair() before the least violating arch found is kept


class Feasibility:
    """The static part of ``constraints``, priced with ``predictor`` (LUT latency) and the arch's layers."""

    def __init__(self, predictor: Any, constraints: Constraints):
        self.predictor, self.constraints = predictor, constraints
        self.limits = {k: getattr(constraints, k) for k in STATIC if getattr(constraints, k) is not None}
        if "budget_ms" in self.limits:  # the budget less the safety margin (--margin)
            self.limits["budget_ms"] = constraints.latency_limit_ms
        self._anchor: Any = None

    @property
    def active(self) -> bool:
        """Whether any limit is checkable before evaluating (else nothing needs repairing)."""
        return bool(self.limits)

    def violations(self, archs: Sequence[Any]) -> np.ndarray:
        """Summed relative violation of the static limits per arch (0: within all of them)."""
        if not archs or not self.limits:
            return np.zeros(len(archs))
        lat = self.predictor.predict_many(archs) if "budget_ms" in self.limits else np.zeros(len(archs))
        v = np.zeros(len(archs))
        if "budget_ms" in self.limits:
            v += np.maximum(0.0, lat / self.limits["budget_ms"] - 1.0)
        others = {k: lim for k, lim in self.limits.items() if k != "budget_ms"}
        if others:
            for i, (a, ms) in enumerate(zip(archs, lat)):
                r = SearchRecord.of(a, ms, 0.0)
                v[i] += sum(max(0.0, getattr(r, STATIC[k]) / lim - 1.0) for k, lim in others.items())
        return v

    def violation(self, arch: Any) -> float:
        return float(self.violations([arch])[0])

    def genes_violations(self, G: np.ndarray) -> np.ndarray | None:
        """:meth:`violations` of gene rows without making archs, where only the latency budget is set and the
        predictor prices gene matrices (MobileNetV3's fast path); None where archs are needed."""
        if set(self.limits) != {"budget_ms"} or not hasattr(self.predictor, "predict_genes"):
            return None
        return np.maximum(0.0, self.predictor.predict_genes(G) / self.limits["budget_ms"] - 1.0)

    def anchor(self) -> Any:
        """The arch repairs move towards: the fastest one by the LUT (within every latency budget that passed
        the run's check), or the space's smallest when latency is not limited."""
        if self._anchor is None:
            self._anchor = self.predictor.fastest()[0] if "budget_ms" in self.limits else \
                self.predictor.space.smallest()
        return self._anchor


def repair(arch: Any, violation: Callable[[Any], float], rng: random.Random, mutate_prob: float,
           anchor: Any = None, seen: set[str] | frozenset = frozenset(), steps: int = REPAIR_STEPS) -> Any:
    """``arch`` moved into the region where ``violation`` is 0 by at most ``steps`` hill-climbing steps: each
    step a mutation or (when an ``anchor`` in the region is given, every other step) a crossover with it,
    kept when it violates less. An arch proposed before (``seen``) is not an end point. Returns the first
    arch found with violation 0 that is not in ``seen``, else the least violating one found."""
    best, best_v = arch, violation(arch)
    if best_v <= 0 and arch.id not in seen:
        return arch
    fresh: tuple[Any, float] | None = None  # the least violating arch not proposed before
    prob = max(mutate_prob, 2.0 / max(1, len(arch.genes())))
    for step in range(steps):
        cand = best.crossover(anchor, rng) if anchor is not None and step % 2 else best
        cand = cand.mutate(rng, prob)
        v = violation(cand)
        if v <= 0 and cand.id not in seen:
            return cand
        if cand.id not in seen and (fresh is None or v < fresh[1]):
            fresh = (cand, v)
        if v <= best_v:
            best, best_v = cand, v
    return fresh[0] if fresh is not None and fresh[1] <= best_v else best


def outside_counts(records: Sequence[SearchRecord], constraints: Constraints) -> dict[str, int]:
    """Per constraint set: how many of ``records`` (evaluated, not failed) fall outside it."""
    out = {}
    for key, (field, sign) in ALL_LIMITS.items():
        limit = getattr(constraints, key)
        if limit is None:
            continue
        out[key] = sum(1 for r in records if (getattr(r, field) > limit if sign > 0 else getattr(r, field) < limit))
    return out
