"""``multifidelity``: a cheap score and a short training, combined by rank over the archs it is given.

The seeds' multi-fidelity scheme: a zero-cost filter, then short trainings of what
the filter kept. Neither fidelity ranks well alone on a network-level space (on
``network-demo``, NASWOT's Kendall tau against the 12-epoch reference is 0.47 and a
2-epoch training's 0.44: one sees the untrained network's expressivity, the other a
noisy early accuracy), yet they err differently, so their mean rank ranks better
than either (0.60; docs/evaluators.md). Ranks are taken over the list scored, so its
scores are *relative to that list*: it ranks candidates (``hwnas score``, the
search's ``--refine`` stage), and a search cannot use it as its running objective,
whose scores must not depend on the batch they came in.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.evaluate.proxies import PROXIES, ProxyEvaluator
from hwnas.evaluate.train import EarlyStoppingEvaluator
from hwnas.evaluate.vote import rank_vote
from hwnas.spaces.base import SpaceArch

DEFAULT_PROXY = "naswot"
DEFAULT_EPOCHS = 2


def vote_with_training(cheap: Sequence[float], trained: Sequence[float]) -> list[float]:
    """Mean rank (0 = worst) of the cheap score and the short training's accuracy over one list of archs; a
    failed training (NaN) ranks last on its fidelity."""
    fill = [(-math.inf if not math.isfinite(v) else v) for v in trained]
    return [float(v) for v in rank_vote({"cheap": np.asarray(cheap, float), "trained": np.asarray(fill, float)})]


@register_evaluator("multifidelity")
class MultiFidelityEvaluator:
    """Mean rank of a zero-cost proxy (``proxy=``, default naswot) and the validation accuracy after a short
    training from scratch (``epochs=``, default 2; no early stopping) over the archs it is given: a ranker of
    candidates, relative to the list."""

    name = "multifidelity"
    relative = True  # scores depend on the list scored: not a search's running objective (run_search refuses it)

    def __init__(self, proxy: str = DEFAULT_PROXY, epochs: int = DEFAULT_EPOCHS, data: str | None = None,
                 split_seed: int = 0, data_limit: int | None = None, seed: int = 0, batch_size: int = 64,
                 lr: float = 0.1, device: str = "auto"):
        if proxy not in PROXIES:
            raise EvaluatorError(f"multifidelity proxy= must be one of {sorted(PROXIES)}, got {proxy!r}")
        if isinstance(epochs, bool) or int(epochs) != epochs or int(epochs) < 1:
            raise EvaluatorError(f"multifidelity epochs= must be a whole number >= 1, got {epochs!r}")
        self.proxy = ProxyEvaluator(proxy, seed=seed, data=data, split_seed=split_seed, batch_size=batch_size,
                                    data_limit=data_limit)
        self.trainer = EarlyStoppingEvaluator(data=data, split_seed=split_seed, max_epochs=int(epochs), patience=0,
                                              batch_size=batch_size, lr=lr, seed=seed, data_limit=data_limit,
                                              device=device)
        self.data, self.split_seed, self.data_limit = data, int(split_seed), data_limit

    def config(self) -> dict[str, Any]:
        return {"proxy": self.proxy.config(), "train": self.trainer.config(), "combine": "mean rank over the list",
                "data": self.data, "split_seed": self.split_seed,
                **({} if self.data_limit is None else {"data_limit": self.data_limit})}

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        if not archs:
            return []
        return vote_with_training(self.proxy.evaluate(archs), self.trainer.evaluate(archs))
