"""Compound scaling (EfficientNet) priced on the device: scale a base arch's depth, width and resolution
together by (alpha^phi, beta^phi, gamma^phi) with alpha * beta^2 * gamma^2 ~= 2, and keep the largest phi whose
**LUT-predicted latency** fits the budget (EfficientNet's rule uses FLOPs; the latency of the device is what
a budget is about). The kind scales an arch (``arch.scaled(depth, width, resolution)``), snapping each factor
to the values its space allows, so the LUT prices every candidate.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hwnas.core.errors import InputError

ALPHAS = (1.0, 1.1, 1.2, 1.3, 1.4)
BETAS = (1.0, 1.05, 1.1, 1.15, 1.2)
GAMMAS = (1.0, 1.05, 1.1, 1.15, 1.2)
FLOPS_TARGET, FLOPS_TOLERANCE = 2.0, 0.1
PHIS = tuple(i / 4 for i in range(0, 33))  # 0, 0.25, ... 8


class ScalingError(InputError):
    """A base arch that cannot be scaled (its kind cannot), or coefficients off the rule."""


def grid(target: float = FLOPS_TARGET, tolerance: float = FLOPS_TOLERANCE) -> list[tuple[float, float, float]]:
    """The (alpha, beta, gamma) of the small grid with alpha * beta^2 * gamma^2 within ``tolerance`` of ``target``."""
    return [(a, b, g) for a, b, g in itertools.product(ALPHAS, BETAS, GAMMAS)
            if abs(a * b * b * g * g - target) <= tolerance]


@dataclass
class ScaleRow:
    alpha: float
    beta: float
    gamma: float
    phi: float                 # the largest that fits (0: the base itself)
    arch: Any
    predicted_ms: float
    score: float | None = None
    saturated: bool = False  # the space allows nothing larger along these coefficients (not the budget)


@dataclass
class ScaleResult:
    base: Any
    base_ms: float
    budget_ms: float
    rows: list[ScaleRow]
    pick: ScaleRow
    evaluator: str | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"base {self.base.id} ({self.base.summary}): predicted {self.base_ms:.3f} ms; budget {self.budget_ms:g} ms",
               f"{'alpha':>5} {'beta':>5} {'gamma':>5} {'a*b^2*g^2':>9} {'phi':>5}  {'predicted':>9}  "
               f"{'score':>9}  arch"]
        for r in self.rows:
            score = "" if r.score is None else f"{r.score:9.3f}"
            mark = ("  (the space's largest)" if r.saturated else "") + ("  <- pick" if r is self.pick else "")
            out.append(f"{r.alpha:5.2f} {r.beta:5.2f} {r.gamma:5.2f} {r.alpha * r.beta ** 2 * r.gamma ** 2:9.3f} "
                       f"{r.phi:5.2f}  {r.predicted_ms:7.3f} ms  {score:>9}  {r.arch.id} res {r.arch.resolution} "
                       f"{r.arch.summary}{mark}")
        return out + self.notes


def compound_scale(predictor: Any, base: Any, budget_ms: float,
                   coefficients: Sequence[tuple[float, float, float]] | None = None,
                   score: Callable[[list[Any]], list[float]] | None = None, evaluator: str | None = None) -> ScaleResult:
    """For each (alpha, beta, gamma) (default: :func:`grid`), the largest phi whose scaled arch the LUT predicts
    within ``budget_ms``; the pick is the one ``score`` rates highest (an accuracy evaluator), or, without one,
    the slowest that fits (the most of the budget used)."""
    if not hasattr(base, "scaled"):
        raise ScalingError(f"a {base.space.kind} arch cannot be compound-scaled (its kind has no scaled()); "
                           f"macro kinds (mbv3, network) can")
    if not budget_ms > 0:
        raise ScalingError(f"the budget must be a positive number of ms, got {budget_ms}")
    base_ms = float(predictor.predict(base))
    if base_ms > budget_ms:
        raise ScalingError(f"the base arch is predicted at {base_ms:.3f} ms, over the budget {budget_ms:g} ms: "
                           f"compound scaling only grows it; start from a smaller base")
    rows = []
    for a, b, g in coefficients or grid():
        if not all(math.isfinite(v) and v >= 1 for v in (a, b, g)):  # NaN passes a "< 1" test
            raise ScalingError(f"alpha, beta, gamma must be finite numbers >= 1 (scaling up), got {a}, {b}, {g}")
        if a == b == g == 1:
            raise ScalingError("alpha, beta, gamma 1, 1, 1 grow nothing (every phi gives the base arch): give at "
                               "least one above 1, e.g. 1.2,1.1,1.15 (EfficientNet's, alpha*beta^2*gamma^2 ~ 2)")
        fits = [(0.0, base, base_ms)]
        saturated = True
        for phi in PHIS[1:]:
            arch = base.scaled(a ** phi, b ** phi, g ** phi)
            if arch.id == fits[-1][1].id:
                continue  # the space's choices did not move yet: phi counts from where the arch changed
            ms = float(predictor.predict(arch))
            if ms > budget_ms:
                saturated = False
                break
            fits.append((phi, arch, ms))
        phi, arch, ms = fits[-1]
        rows.append(ScaleRow(a, b, g, phi, arch, ms, saturated=saturated))
    if score is not None:
        for r, s in zip(rows, score([r.arch for r in rows])):
            r.score = float(s)
        pick = max(rows, key=lambda r: (r.score, r.predicted_ms))
    else:
        pick = max(rows, key=lambda r: r.predicted_ms)
    notes = [] if any(r.phi > 0 for r in rows) else [
        "no phi > 0 fits: every scaled arch is over the budget (or the space allows nothing larger)"]
    return ScaleResult(base, base_ms, budget_ms, rows, pick, evaluator, notes)
