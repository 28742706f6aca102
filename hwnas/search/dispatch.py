"""Where evaluations run: in this process, or a local process pool.

One small interface (``map(evaluator, chunks)``), so a distributed backend (Ray,
a cluster queue) can be added without touching the strategies.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, Sequence

from hwnas.errors import SearchError
from hwnas.space import Arch


class Dispatcher(Protocol):
    workers: int

    def map(self, evaluator: Any, chunks: Sequence[Sequence[Arch]]) -> list[list[float]]:
        ...


def _evaluate_chunk(evaluator: Any, archs: Sequence[Arch]) -> list[float]:
    import torch

    torch.set_num_threads(1)  # the pool already uses the cores
    return list(evaluator.evaluate(archs))


class SerialDispatcher:
    workers = 1

    def map(self, evaluator: Any, chunks: Sequence[Sequence[Arch]]) -> list[list[float]]:
        return [list(evaluator.evaluate(c)) for c in chunks]


class PoolDispatcher:
    """A lazily started process pool, kept for the whole run."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, evaluator: Any, chunks: Sequence[Sequence[Arch]]) -> list[list[float]]:
        if self._pool is None:
            import multiprocessing as mp

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        return list(self._pool.map(_evaluate_chunk, [evaluator] * len(chunks), chunks))

    def __del__(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def make_dispatcher(workers: int) -> Dispatcher:
    if workers < 1:
        raise SearchError(f"workers must be >= 1, got {workers}")
    return SerialDispatcher() if workers == 1 else PoolDispatcher(workers)

