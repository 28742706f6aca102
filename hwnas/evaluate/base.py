"""The evaluator interface, a name registry and a cache keyed by (arch id, evaluator config)."""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from hwnas import jsonio
from hwnas.errors import InputError
from hwnas.space import Arch


class EvaluatorError(InputError):
    """An unknown evaluator, or options it does not take."""


@runtime_checkable
class Evaluator(Protocol):
    """Scores architectures; higher is better (an accuracy, or a proxy that ranks like one)."""

    name: str

    def config(self) -> dict[str, Any]:
        """Everything that changes the score (data, seed, epochs…): part of the cache key."""

    def evaluate(self, archs: Sequence[Arch]) -> list[float]:
        ...


_REGISTRY: dict[str, Callable[..., Evaluator]] = {}


def register_evaluator(name: str) -> Callable:
    def deco(factory: Callable[..., Evaluator]) -> Callable[..., Evaluator]:
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtins() -> None:
    # importing registers: proxy:*, proxy:vote, predictor, supernet, train
    from hwnas.evaluate import predictor, proxies, supernet, train, vote  # noqa: F401


def list_evaluators() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create_evaluator(name: str, **options: Any) -> Evaluator:
    _load_builtins()
    if name not in _REGISTRY:
        raise EvaluatorError(f"unknown evaluator {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**options)


def config_key(evaluator: Evaluator) -> str:
    blob = jsonio.dumps({"name": evaluator.name, **evaluator.config()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CachedEvaluator:
    """Wraps an evaluator so no (arch, config) pair is evaluated twice; ``seed`` pre-fills it (resume)."""

    def __init__(self, inner: Evaluator, seed: dict[str, float] | None = None, dispatcher: Any = None,
                 on_result: Callable[[list[Arch], list[float]], None] | None = None):
        """``on_result(archs, scores)`` is called as each chunk of new evaluations finishes (the run loop
        stores them there, so nothing finished is lost to a kill)."""
        self.inner = inner
        self.dispatcher = dispatcher
        self.on_result = on_result
        self.name = inner.name
        self.key = config_key(inner)
        self.cache: dict[str, float] = dict(seed or {})
        self.hits = self.misses = 0

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def evaluate(self, archs: Sequence[Arch]) -> list[float]:
        todo = list({a.id: a for a in archs if a.id not in self.cache}.values())
        self.hits += len(archs) - len(todo)
        self.misses += len(todo)
        if todo:
            if self.dispatcher is not None:
                chunks = self.dispatcher.split(todo)
                results = self.dispatcher.imap(self.inner, chunks)
            else:
                chunks = [todo]
                results = iter([(0, list(self.inner.evaluate(todo)))])
            for i, scores in results:
                for a, score in zip(chunks[i], scores):
                    self.cache[a.id] = float(score)
                if self.on_result is not None:
                    self.on_result(list(chunks[i]), [float(s) for s in scores])
        return [self.cache[a.id] for a in archs]
