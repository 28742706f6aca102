"""Where evaluations run: in this process, a local process pool, or a Ray cluster.

One small interface: ``split(archs)`` cuts the archs to evaluate into chunks and ``imap(evaluator,
chunks)`` yields ``(chunk index, scores)`` as each chunk finishes, so the run loop stores every result
the moment it exists. Serial and Ray evaluate one arch per chunk (a killed driver loses at most the
archs in flight); the local pool one chunk per worker and generation (the evaluator, a supernet say,
is loaded once per chunk, not per arch). When one chunk fails, the others still finish and are
stored before the error is raised. The strategy stays ask/tell in the driver.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Iterator, Protocol, Sequence

from hwnas.core.errors import SearchError
from hwnas.evaluate.base import evaluate_each, transient
from hwnas.spaces.base import SpaceArch

RAY_INSTALL = "pip install 'hwnas[ray]'"


class Dispatcher(Protocol):
    workers: int

    def split(self, archs: Sequence[SpaceArch]) -> list[list[SpaceArch]]:
        ...

    def imap(self, evaluator: Any, chunks: Sequence[Sequence[SpaceArch]]) -> Iterator[tuple[int, list[float]]]:
        ...

    def close(self) -> None:
        ...


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Contiguous, order-preserving chunks."""
    n = len(items)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [list(items[bounds[i]:bounds[i + 1]]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def _evaluate_chunk(evaluator: Any, archs: Sequence[SpaceArch]) -> list[float]:
    import torch

    torch.set_num_threads(1)  # the pool already uses the cores
    return evaluate_each(evaluator, archs)


class SerialDispatcher:
    workers = 1

    def close(self) -> None:
        pass

    def split(self, archs: Sequence[SpaceArch]) -> list[list[SpaceArch]]:
        return [[a] for a in archs]

    def imap(self, evaluator: Any, chunks: Sequence[Sequence[SpaceArch]]) -> Iterator[tuple[int, list[float]]]:
        for i, c in enumerate(chunks):
            yield i, evaluate_each(evaluator, c)


class PoolDispatcher:
    """A lazily started process pool, kept for the whole run; one chunk per worker."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def split(self, archs: Sequence[SpaceArch]) -> list[list[SpaceArch]]:
        return split(archs, self.workers)

    def imap(self, evaluator: Any, chunks: Sequence[Sequence[SpaceArch]]) -> Iterator[tuple[int, list[float]]]:
        if self._pool is None:
            import multiprocessing as mp

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        futures = {self._pool.submit(_evaluate_chunk, evaluator, c): i for i, c in enumerate(chunks)}
        error: BaseException | None = None
        for f in as_completed(futures):
            try:
                result = f.result()
            except Exception as e:  # the other chunks still finish and are stored first
                error = error or e
                continue
            yield futures[f], result
        if error is not None:
            raise error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()


class _EvaluatorActor:
    """Holds one evaluator per Ray worker: its data set and checkpoint are loaded once, not per task."""

    def __init__(self, evaluator: Any, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.evaluator = evaluator

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        return evaluate_each(self.evaluator, archs)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SearchError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


class RayDispatcher:
    """Each arch is a Ray task on one of ``workers`` actors (each ``num_cpus`` CPUs, ``num_gpus`` GPUs).

    The evaluator goes to the object store once (``ray.put``) and each actor deserialises it once. A
    worker process that dies mid-task is restarted and the task retried (``max_restarts`` /
    ``max_task_retries``); an evaluator that raises for an arch scores it NaN with its message
    (``evaluate_each``: recorded as failed, not retried), anything else that fails a task stops the run
    (what finished is already stored: ``--resume`` continues). ``address``: None starts a local Ray; ``auto`` or
    ``ray://host:port`` joins a cluster."""

    def __init__(self, workers: int | None = None, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, retries: int = 3):
        self.ray = _ray()
        self.address, self.num_cpus, self.num_gpus, self.retries = address, num_cpus, num_gpus, retries
        self.workers = workers or 0  # 0: as many as the cluster's CPUs allow (decided when started)
        self._actors: list[Any] = []
        self._evaluator: Any = None
        self._ref: Any = None

    def _start(self, evaluator: Any) -> None:
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                             p for p in (os.environ.get("PYTHONPATH"), os.getcwd()) if p)}})
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SearchError(f"could not reach Ray at {self.address or 'a new local instance'}: {e}") from None
        fits = max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus))
        if self.workers > fits:  # actors beyond the cluster's CPUs would never start: their tasks would hang
            print(f"note: the Ray cluster has room for {fits} worker(s) of {self.num_cpus:g} CPU; using {fits}, "
                  f"not {self.workers}", file=sys.stderr)
        self.workers = min(self.workers, fits) if self.workers else fits
        actor = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=self.retries,
                           max_task_retries=self.retries)(_EvaluatorActor)
        self._ref = ray.put(evaluator)  # kept: a restarted actor is built again from it
        self._actors = [actor.remote(self._ref, int(self.num_cpus)) for _ in range(self.workers)]
        self._evaluator = evaluator

    def close(self) -> None:
        """Free the actors' CPUs (the Ray instance stays up for whoever started it)."""
        for a in self._actors:
            self.ray.kill(a)
        self._actors, self._evaluator, self._ref = [], None, None

    def split(self, archs: Sequence[SpaceArch]) -> list[list[SpaceArch]]:
        return [[a] for a in archs]  # one task per arch: balanced, and each result stored as it comes

    def imap(self, evaluator: Any, chunks: Sequence[Sequence[SpaceArch]]) -> Iterator[tuple[int, list[float]]]:
        if evaluator is not self._evaluator:
            self.close()
            self._start(evaluator)
        ray, todo, running = self.ray, list(enumerate(chunks)), {}
        idle = list(self._actors)
        error: BaseException | None = None
        while todo or running:
            while todo and idle:
                i, chunk = todo.pop(0)
                actor = idle.pop(0)
                running[actor.evaluate.remote(list(chunk))] = (i, actor)
            done, _ = ray.wait(list(running), num_returns=1)
            i, actor = running.pop(done[0])
            idle.append(actor)
            try:
                scores = ray.get(done[0])
            except ray.exceptions.RayTaskError as e:  # the tasks in flight still finish and are stored
                cause = getattr(e, "cause", None)
                if error is None:
                    # the machine failing (memory, disk) is raised as itself: not a mistake in the input
                    error = cause if cause is not None and transient(cause) else SearchError(
                        f"evaluating {[a.id for a in chunks[i]]} failed on a Ray worker: {cause or e}")
                todo = []
                continue
            yield i, scores
        if error is not None:
            raise error


def make_dispatcher(workers: int, executor: str = "local", ray_address: str | None = None) -> Dispatcher:
    """``local``: this process (``workers`` 1) or a process pool; ``ray``: a Ray cluster (``ray_address``
    None starts a local one)."""
    if workers < 1:
        raise SearchError(f"workers must be >= 1, got {workers}")
    if executor == "ray":
        return RayDispatcher(workers if workers > 1 else None, ray_address)
    if executor != "local":
        raise SearchError(f"unknown executor {executor!r}; choose local or ray")
    if ray_address:
        raise SearchError("--ray-address needs --executor ray")
    return SerialDispatcher() if workers == 1 else PoolDispatcher(workers)
