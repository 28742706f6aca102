"""Objectives and constraints of a search: records for archs (:class:`SearchRecord`), minimisation vectors,
violations. An objective's name is a field of the record."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from hwnas.core.errors import SearchError
from hwnas.latency.predict import Predictor
from hwnas.search.records import SearchRecord
from hwnas.spaces.base import SpaceArch

# name -> +1 to maximise, -1 to minimise
OBJECTIVES = {"accuracy": +1, "latency_ms": -1, "params_m": -1, "macs_m": -1, "memory_mb": -1}


@dataclass(frozen=True)
class Constraints:
    """Limits; each becomes a relative violation max(0, value/limit - 1), summed (0 = feasible)."""

    budget_ms: float | None = None
    max_params_m: float | None = None
    max_memory_mb: float | None = None
    min_accuracy: float | None = None
    max_layers: int | None = None
    max_macs_m: float | None = None  # Constraints(...) given by position keeps its meaning: new fields go last
    margin: float | None = None      # a safety margin below the budget, a fraction: latency <= budget x (1 - margin)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def latency_limit_ms(self) -> float | None:
        """What the search holds latency to: the budget less the safety margin (``hwnas search --margin``)."""
        if self.budget_ms is None or not self.margin:
            return self.budget_ms
        return self.budget_ms * (1.0 - self.margin)

    def violation(self, r: SearchRecord) -> float:
        v = 0.0
        for limit, value in ((self.latency_limit_ms, r.latency_ms), (self.max_params_m, r.params_m),
                             (self.max_memory_mb, r.memory_mb), (self.max_layers, r.layers),
                             (self.max_macs_m, r.macs_m)):
            if limit is not None and value > limit:
                v += value / limit - 1.0
        if self.min_accuracy is not None and r.accuracy < self.min_accuracy:
            v += (self.min_accuracy - r.accuracy) / max(abs(self.min_accuracy), 1e-9)
        return v


class Problem:
    def __init__(self, predictor: Predictor, evaluator: Any, constraints: Constraints,
                 objectives: Sequence[str] = ("accuracy", "latency_ms")):
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or "accuracy" not in objectives or "latency_ms" not in objectives:
            raise SearchError(f"objectives must include accuracy and latency_ms, from {list(OBJECTIVES)}; got {objectives}")
        twice = sorted({o for o in objectives if list(objectives).count(o) > 1})
        if twice:  # stored as given, a duplicate weighed twice in the hypervolume and the crowding distance
            raise SearchError(f"objective(s) {twice} given twice in {list(objectives)}; give each once, e.g. "
                              f"--objectives {' '.join(dict.fromkeys(objectives))}")
        self.predictor, self.evaluator, self.constraints = predictor, evaluator, constraints
        self.objectives = tuple(objectives)

    def records(self, archs: Sequence[SpaceArch], accuracies: Sequence[float]) -> list[SearchRecord]:
        lat = self.predictor.predict_many(archs)
        return [SearchRecord.of(a, l, acc) for a, l, acc in zip(archs, lat, accuracies)]

    def F(self, records: Sequence[SearchRecord]) -> np.ndarray:
        """Objectives to minimise; an arch whose evaluation failed (accuracy NaN) counts as accuracy 0."""
        return np.array([[-OBJECTIVES[o] * (0.0 if r.failed and o == "accuracy" else getattr(r, o))
                          for o in self.objectives] for r in records], float)

    def cv(self, records: Sequence[SearchRecord]) -> np.ndarray:
        """Constraint violation; a failed evaluation is infeasible (FAILED_VIOLATION), so it never reaches a front."""
        return np.array([FAILED_VIOLATION if r.failed else self.constraints.violation(r) for r in records], float)


FAILED_VIOLATION = 1e6
