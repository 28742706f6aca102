"""The evaluator interface, a name registry and a cache keyed by (arch id, evaluator config)."""
from __future__ import annotations

import errno
import hashlib
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.registry import Registry
from hwnas.spaces.base import SpaceArch


class EvaluatorError(InputError):
    """An unknown evaluator, or options it does not take."""


@runtime_checkable
class Evaluator(Protocol):
    """Scores architectures; higher is better (an accuracy, or a proxy that ranks like one)."""

    name: str

    def config(self) -> dict[str, Any]:
        """Everything that changes the score (data, seed, epochs…): part of the cache key."""

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        ...


EVALUATORS = Registry("evaluator", "hwnas.evaluators", EvaluatorError)
# each registered by its own module's decorator; named here so that choosing one imports only its module
for _name, _target in {"predictor": "hwnas.evaluate.predictor:PredictorEvaluator",
                       "supernet": "hwnas.evaluate.supernet:SupernetEvaluator",
                       "train": "hwnas.evaluate.train:EarlyStoppingEvaluator",
                       "proxy:vote": "hwnas.evaluate.vote:VoteEvaluator",
                       "multifidelity": "hwnas.evaluate.multifidelity:MultiFidelityEvaluator",
                       **{f"proxy:{p}": f"hwnas.evaluate.proxies:proxy_{p}"
                          for p in ("synflow", "meco", "macs", "params", "naswot", "grad_norm", "snip")}}.items():
    EVALUATORS.register(_name, _target)
_REGISTRY = EVALUATORS._builtins  # name -> factory (or its lazy "module:attr"); tests patch one in here


def register_evaluator(name: str) -> Callable:
    """Decorator: a built-in evaluator factory (a class, or a function returning one) called ``name``."""
    return EVALUATORS.register(name)


def list_evaluators() -> list[str]:
    return EVALUATORS.names()


def create_evaluator(name: str, **options: Any) -> Evaluator:
    """Evaluator ``name`` made with ``options``; an option its factory does not take is refused, listing those
    it does."""
    return EVALUATORS.create(name, **options)


class Scores(list):
    """Scores of a chunk, NaN where the evaluator raised for that arch; ``errors``: arch id -> message."""

    def __init__(self, values: Sequence[float] = (), errors: dict[str, str] | None = None,
                 raised: dict[str, BaseException] | None = None):
        super().__init__(values)
        self.errors = dict(errors or {})
        self.raised = dict(raised or {})  # the exceptions themselves: re-raised when nothing could be scored


def evaluate_each(evaluator: Evaluator, archs: Sequence[SpaceArch]) -> Scores:
    """``evaluator.evaluate(archs)``; when it raises, each arch again on its own, so one arch the evaluator
    cannot score (a deterministic failure) becomes NaN with its message instead of failing the others; a
    NaN score is a failure too. A worker that dies is not an evaluator error: it is not caught here (the
    pool or Ray handles it); nor is a failure of the machine rather than the arch (out of memory, GPU
    memory included, or an OS error such as a full disk or a network error): it stops the run with
    what finished in other chunks stored (this chunk's archs are all evaluated again), so ``--resume``
    evaluates them again instead of keeping them as failed."""
    try:
        out = Scores([float(v) for v in evaluator.evaluate(archs)])
    except Exception as e:
        if transient(e):
            raise
        if len(archs) == 1:  # already the arch alone: do not run it twice
            return _failure(archs[0], e)
        out = Scores()
        for a in archs:
            try:
                one = Scores([float(evaluator.evaluate([a])[0])])
            except Exception as e1:
                if transient(e1):
                    raise
                one = _failure(a, e1)
            out.append(one[0])
            out.errors.update(one.errors)
            out.raised.update(one.raised)
    for a, v in zip(archs, out):
        if v != v and a.id not in out.errors:
            out.errors[a.id] = "the evaluator returned NaN"
    return out


_TRANSIENT_ERRNOS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EIO", "ENOMEM", "ESTALE", "ETIMEDOUT",
                                                   "ECONNRESET", "ECONNREFUSED", "EAGAIN", "EBUSY", "EHOSTUNREACH")
                     if hasattr(errno, n)}


def transient(e: BaseException) -> bool:
    """A failure of the machine, not of the arch: the same evaluation may well pass on a retry (out of
    memory, CUDA's included; a full disk, an I/O or network error). A missing file is not: it fails
    every time."""
    text = str(e).lower()
    return isinstance(e, (MemoryError, ConnectionError, TimeoutError)) or type(e).__name__ == "OutOfMemoryError" \
        or (isinstance(e, RuntimeError) and any(s in text for s in _MEMORY_MESSAGES)) \
        or (isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS)


# what torch's allocators say when memory runs out (CPU: "DefaultCPUAllocator: can't allocate memory")
_MEMORY_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "alloc_failed")


def _failure(arch: SpaceArch, e: Exception) -> Scores:
    """NaN and the message; the exception itself only when it is bad input (it names what to fix) and
    survives pickling (results cross process boundaries; an exception that cannot be rebuilt there
    would break the pool)."""
    import pickle

    raised: dict[str, BaseException] = {}
    if isinstance(e, InputError):
        try:
            pickle.loads(pickle.dumps(e))
            raised[arch.id] = e
        except Exception:
            pass
    return Scores([float("nan")], {arch.id: f"{type(e).__name__}: {e}"}, raised)


class EvaluationFailed(InputError):
    """The evaluator could score none of the archs of a run's first call: it or its input is broken."""


def config_key(evaluator: Evaluator) -> str:
    blob = jsonio.dumps({"name": evaluator.name, **evaluator.config()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CachedEvaluator:
    """Wraps an evaluator so no (arch, config) pair is evaluated twice; ``seed`` pre-fills it (resume)."""

    def __init__(self, inner: Evaluator, seed: dict[str, float] | None = None, dispatcher: Any = None,
                 on_result: Callable[[list[SpaceArch], list[float]], None] | None = None,
                 on_failure: Callable[[SpaceArch, str], None] | None = None):
        """``on_result(archs, scores)`` is called as each chunk of new evaluations finishes (the run loop
        stores them there, so nothing finished is lost to a kill). An arch the evaluator raises for scores
        NaN and goes to ``on_failure(arch, message)`` instead (recorded, never retried); but while no arch
        has been scored at all, a failure stops the run: then the evaluator is broken, not the arch."""
        self.inner = inner
        self.dispatcher = dispatcher
        self.on_result = on_result
        self.on_failure = on_failure
        self.name = inner.name
        self.key = config_key(inner)
        self.cache: dict[str, float] = dict(seed or {})
        self.hits = self.misses = 0

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        todo = list({a.id: a for a in archs if a.id not in self.cache}.values())
        self.hits += len(archs) - len(todo)
        self.misses += len(todo)
        if todo:
            if self.dispatcher is not None:
                chunks = self.dispatcher.split(todo)
                results = self.dispatcher.imap(self.inner, chunks)
            else:
                chunks = [todo]
                results = iter([(0, evaluate_each(self.inner, todo))])
            failures: list[tuple[SpaceArch, str, BaseException | None]] = []
            for i, scores in results:
                errors = getattr(scores, "errors", {})
                good = [(a, float(v)) for a, v in zip(chunks[i], scores) if a.id not in errors]
                for a, v in good:
                    self.cache[a.id] = v
                if good and self.on_result is not None:
                    self.on_result([a for a, _ in good], [v for _, v in good])
                failures += [(a, errors[a.id], getattr(scores, "raised", {}).get(a.id))
                             for a in chunks[i] if a.id in errors]
            if failures and not any(v == v for v in self.cache.values()):  # judged on the whole call: nothing scored
                arch, message, raised = failures[0]
                if isinstance(raised, InputError):
                    raise raised  # bad input (data, checkpoint) says what to fix in its own words
                raise EvaluationFailed(f"evaluator {self.name!r} could score none of the {len(todo)} archs it was "
                                       f"given (arch {arch.id}: {message}); fix the evaluator or its options "
                                       f"(data, checkpoint) and run the search again")
            for arch, message, _ in failures:
                self.cache[arch.id] = float("nan")
                if self.on_failure is not None:
                    self.on_failure(arch, message)
        return [self.cache[a.id] for a in archs]
