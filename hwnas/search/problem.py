"""Objectives and constraints of a search: records for archs, minimisation vectors, violations."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from hwnas.errors import SearchError
from hwnas.predict import Predictor
from hwnas.space import Arch

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

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def violation(self, r: dict[str, Any]) -> float:
        v = 0.0
        for limit, key in ((self.budget_ms, "latency_ms"), (self.max_params_m, "params_m"),
                           (self.max_memory_mb, "memory_mb"), (self.max_layers, "layers")):
            if limit is not None and r[key] > limit:
                v += r[key] / limit - 1.0
        if self.min_accuracy is not None and r["accuracy"] < self.min_accuracy:
            v += (self.min_accuracy - r["accuracy"]) / max(abs(self.min_accuracy), 1e-9)
        return v


def static_record(arch: Arch, latency_ms: float) -> dict[str, Any]:
    layers = arch.layers()
    return {
        "arch_id": arch.id,
        "arch": arch.to_dict(),
        "latency_ms": float(latency_ms),
        "params_m": sum(d.params for d in layers) / 1e6,
        "macs_m": sum(d.macs for d in layers) / 1e6,
        # fp32 peak live activations (a cell network with no path is a constant: no layers, nothing live)
        "memory_mb": max((d.activation_elems for d in layers), default=0) * 4 / 2**20,
        "layers": len(layers),
    }


class Problem:
    def __init__(self, predictor: Predictor, evaluator: Any, constraints: Constraints,
                 objectives: Sequence[str] = ("accuracy", "latency_ms")):
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown or "accuracy" not in objectives or "latency_ms" not in objectives:
            raise SearchError(f"objectives must include accuracy and latency_ms, from {list(OBJECTIVES)}; got {objectives}")
        self.predictor, self.evaluator, self.constraints = predictor, evaluator, constraints
        self.objectives = tuple(objectives)

    def records(self, archs: Sequence[Arch], accuracies: Sequence[float]) -> list[dict[str, Any]]:
        lat = self.predictor.predict_many(archs)
        return [{**static_record(a, l), "accuracy": float(acc)} for a, l, acc in zip(archs, lat, accuracies)]

    def F(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Objectives to minimise; an arch whose evaluation failed (accuracy NaN) counts as accuracy 0."""
        return np.array([[-OBJECTIVES[o] * (0.0 if failed(r) and o == "accuracy" else r[o])
                          for o in self.objectives] for r in records], float)

    def cv(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Constraint violation; a failed evaluation is infeasible (FAILED_VIOLATION), so it never reaches a front."""
        return np.array([FAILED_VIOLATION if failed(r) else self.constraints.violation(r) for r in records], float)


FAILED_VIOLATION = 1e6


def failed(record: dict[str, Any]) -> bool:
    """The evaluator raised for this arch (its accuracy is NaN)."""
    return record["accuracy"] != record["accuracy"]
