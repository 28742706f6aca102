"""``proxy:vote``: several zero-cost proxies combined by rank, as the zero-cost literature does.

Abdelfattah et al. (2021) let synflow, jacov/naswot and snip vote on which of two
networks is better; on NAS-Bench-201 the vote ranked better (Spearman 0.82) than
the best single proxy (0.74). A search scores architectures a batch at a time, so
a rank *within the batch* would change with the batch. Here each proxy score is
turned into a percentile against a fixed, seeded reference sample of the space
(scored once per evaluator), and the vote is the mean percentile over the proxies:
a number in [0, 100] that depends only on the arch, the seed and the data.
Whether the vote beats its members is measured (tools/bench_evaluators.py), not assumed.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np

from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.evaluate.proxies import PROXIES, ProxyEvaluator
from hwnas.spaces.base import SpaceArch

DEFAULT_MEMBERS = ("synflow", "naswot", "snip")


def rank_vote(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The plain vote over one fixed set of archs: mean rank (0 = worst) over the proxies. For benchmarks."""
    ranks = [np.argsort(np.argsort(np.asarray(s, float), kind="stable"), kind="stable") for s in scores.values()]
    return np.mean(ranks, axis=0)


def percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the reference scoring below each value (ties count half), in percent."""
    ref = np.sort(reference)
    below = np.searchsorted(ref, values, side="left")
    upto = np.searchsorted(ref, values, side="right")
    return (below + upto) / 2 / len(ref) * 100


@register_evaluator("proxy:vote")
class VoteEvaluator:
    """Mean percentile of each member proxy against a reference sample of the space."""

    def __init__(self, proxies: str | Sequence[str] = DEFAULT_MEMBERS, reference: int = 64, seed: int = 0,
                 data: str | None = None, split_seed: int = 0, batch_size: int = 64, data_limit: int | None = None):
        members = tuple(p.strip() for p in proxies.split(",")) if isinstance(proxies, str) else tuple(proxies)
        unknown = [p for p in members if p not in PROXIES]
        if len(members) < 2 or unknown:
            raise EvaluatorError(f"proxy:vote needs 2 or more of {sorted(PROXIES)} in proxies=A,B,..., got {members!r}")
        if int(reference) < 8:
            raise EvaluatorError(f"proxy:vote reference= must be >= 8 archs, got {reference!r}")
        self.name = "proxy:vote"
        self.members, self.reference, self.seed = members, int(reference), int(seed)
        self.proxies = {p: ProxyEvaluator(p, seed=seed, data=data, split_seed=split_seed, batch_size=batch_size,
                                         data_limit=data_limit)
                        for p in members}
        self._refs: dict[str, np.ndarray] | None = None
        self._space_digest: str | None = None

    def config(self) -> dict[str, Any]:
        first = next(iter(self.proxies.values()))  # the data every member reads (finalize reads it from here)
        data = {"data": first.data, "split_seed": first.split_seed,
                **({} if first.data_limit is None else {"data_limit": first.data_limit})}
        return {"members": {p: e.config() for p, e in self.proxies.items()}, "reference": self.reference, **data}

    def _reference_scores(self, space: Any) -> dict[str, np.ndarray]:
        if self._refs is None or self._space_digest != space.digest:
            archs = space.sample_distinct(self.reference, random.Random(self.seed + 104729))
            self._refs = {p: np.asarray(e.evaluate(archs), float) for p, e in self.proxies.items()}
            self._space_digest = space.digest
        return self._refs

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        if not archs:
            return []
        refs = self._reference_scores(archs[0].space)
        votes = np.mean([percentile(refs[p], np.asarray(e.evaluate(archs), float))
                         for p, e in self.proxies.items()], axis=0)
        return [float(v) for v in votes]
