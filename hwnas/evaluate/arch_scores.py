"""Scoring a list of architectures with one accuracy evaluator: ``hwnas score``, what ``hwnas predict`` is for
latency.

Which evaluator when none is named is decided by measurement (docs/evaluators.md): on NAS-Bench-201's public
accuracies the data-free MeCo proxy ranks 1,000 networks at Spearman 0.92 against CIFAR-10, where their
parameter count reaches 0.80 and synflow 0.78 (``tools/bench_nb201_proxies.py``), so it is the default with
or without data until an evaluator that uses the data is shown to beat it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from hwnas.evaluate.base import EVALUATORS, EvaluatorError, create_evaluator, evaluate_each

DEFAULT_EVALUATOR = "proxy:meco"
NO_DATA = "none"


def default_evaluator(data: str | None = None) -> str:
    """The evaluator to use when the user names none: the best measured one (see the module's docstring)."""
    return DEFAULT_EVALUATOR


@dataclass
class ScoreResult:
    """Scores of archs in the order given (higher = predicted more accurate), NaN where one failed."""

    evaluator: str
    config: dict[str, Any]
    archs: list[Any]
    scores: list[float]
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    chosen: bool = False  # the evaluator was the default, not named by the user

    def to_dict(self) -> dict[str, Any]:
        return {"evaluator": self.evaluator, "config": self.config,
                "results": [{"arch_id": a.id, "summary": a.summary,
                             "score": None if s != s else s, **({"error": self.errors[a.id]}
                                                                if a.id in self.errors else {})}
                            for a, s in zip(self.archs, self.scores)]}

    def lines(self) -> list[str]:
        how = " (the default: the best measured evaluator; --evaluator NAME for another)" if self.chosen else ""
        out = [f"{self.evaluator}{how}: {len(self.archs)} arch(s) in {self.seconds:.1f} s; higher = predicted "
               f"more accurate"]
        for a, s in zip(self.archs, self.scores):
            shown = f"{s:12.4f}" if s == s else f"{'failed':>12}"
            out.append(f"  {a.id}  {shown}  {a.summary}" + (f"  ({self.errors[a.id]})" if a.id in self.errors else ""))
        return out


def score_archs(archs: Sequence[Any], evaluator: str | None = None, options: dict[str, Any] | None = None,
                data: str | None = None) -> ScoreResult:
    """Score ``archs`` with ``evaluator`` (the default when None). ``data``: the data set an evaluator that
    needs data reads (``none``: data-free only); never a silent default."""
    options = dict(options or {})
    chosen = evaluator is None
    name = default_evaluator(data) if chosen else evaluator
    takes = EVALUATORS.options(name)
    if data not in (None, NO_DATA):
        if takes is not None and "data" not in takes:
            raise EvaluatorError(f"evaluator {name} reads no data set (--data {data}); leave --data out, or pick "
                                 f"one that does (proxy:naswot, proxy:snip, proxy:grad_norm, train)")
        options.setdefault("data", data)
    ev = create_evaluator(name, **options)
    needs = getattr(ev, "needs_data", "data" in (takes or {}) and name == "train")
    if needs and "data" not in options:
        raise EvaluatorError(f"evaluator {name} scores from the data: give --data NAME (e.g. fashion-mnist, or a "
                             f"folder: docs/evaluators.md#your-data), or a data-free evaluator "
                             f"(--evaluator {DEFAULT_EVALUATOR})")
    t0 = time.perf_counter()
    scores = evaluate_each(ev, list(archs))
    if scores.raised and all(s != s for s in scores):  # nothing scored, and the cause is bad input: say it
        raise next(iter(scores.raised.values()))
    return ScoreResult(name, ev.config(), list(archs), [float(s) for s in scores], dict(scores.errors),
                       time.perf_counter() - t0, chosen)
