"""When a search stops: termination criteria as objects (pymoo's ``Termination``), combined by "any".

Each criterion looks at the run's :class:`Progress` before a generation starts and returns why the run
stops, or None. Everything they read is in the run store (committed generations, stored evaluations, the
elapsed time stored with them), so a resumed run stops exactly where the same run uninterrupted would
(the time budget aside, which counts wall time: the stored elapsed time of every session counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from hwnas.core.errors import SearchError


@dataclass(frozen=True)
class Progress:
    """Where a run stands before its next generation."""

    generations: int          # committed so far
    evaluations: int          # distinct archs evaluated
    elapsed_s: float          # wall time of every session of the run
    hypervolumes: Sequence[float] = ()  # one per committed generation


@dataclass(frozen=True)
class Stop:
    """Why a run stopped: ``reason`` is a fixed word (generations, max_evaluations, time_budget, stalled)."""

    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class MaxGenerations:
    n: int

    def stop(self, p: Progress) -> Stop | None:
        return Stop("generations", f"{self.n} generations done") if p.generations >= self.n else None


@dataclass(frozen=True)
class MaxEvaluations:
    """At most ``n`` evaluations: the last generation is cut to what is left (see :meth:`remaining`)."""

    n: int

    def stop(self, p: Progress) -> Stop | None:
        return Stop("max_evaluations", f"{self.n} evaluations reached (--max-evaluations)") \
            if p.evaluations >= self.n else None

    def remaining(self, p: Progress) -> int:
        return max(0, self.n - p.evaluations)


@dataclass(frozen=True)
class TimeBudget:
    """Wall time of the run, all sessions together; checked between generations (a generation started in
    time finishes, so its evaluations are kept)."""

    seconds: float

    def stop(self, p: Progress) -> Stop | None:
        return Stop("time_budget", f"time budget {format_duration(self.seconds)} spent "
                    f"({format_duration(p.elapsed_s)} elapsed, --wall-time)") if p.elapsed_s >= self.seconds else None


@dataclass(frozen=True)
class Stalled:
    """The front's hypervolume has not grown for ``k`` generations."""

    k: int

    def stop(self, p: Progress) -> Stop | None:
        hv = list(p.hypervolumes)
        if len(hv) <= self.k or hv[-1] > hv[-1 - self.k]:
            return None
        return Stop("stalled", f"hypervolume unchanged for {self.k} generations at {hv[-1]:.6g} "
                    f"(--stop-when-stalled)")


@dataclass(frozen=True)
class Termination:
    """Any of the criteria stops the run (generations is always one of them)."""

    criteria: tuple[Any, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, generations: int, max_evaluations: int | None = None, time_budget_s: float | None = None,
           stop_when_stalled: int | None = None) -> "Termination":
        check_termination(max_evaluations, time_budget_s, stop_when_stalled)
        crit: list[Any] = [MaxGenerations(generations)]
        if max_evaluations is not None:
            crit.append(MaxEvaluations(max_evaluations))
        if time_budget_s is not None:
            crit.append(TimeBudget(float(time_budget_s)))
        if stop_when_stalled is not None:
            crit.append(Stalled(stop_when_stalled))
        return cls(tuple(crit))

    def stop(self, p: Progress) -> Stop | None:
        for c in self.criteria:
            why = c.stop(p)
            if why is not None:
                return why
        return None

    def remaining(self, p: Progress) -> int | None:
        """How many evaluations the evaluation cap leaves (None: no cap)."""
        caps = [c.remaining(p) for c in self.criteria if isinstance(c, MaxEvaluations)]
        return min(caps) if caps else None

    def to_dict(self) -> dict[str, Any]:
        names = {MaxGenerations: "generations", MaxEvaluations: "max_evaluations", TimeBudget: "time_budget_s",
                 Stalled: "stop_when_stalled"}
        return {names[type(c)]: next(iter(vars(c).values())) for c in self.criteria}


def check_termination(max_evaluations: Any, time_budget_s: Any, stop_when_stalled: Any) -> None:
    for name, value in (("max-evaluations", max_evaluations), ("stop-when-stalled", stop_when_stalled)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SearchError(f"--{name} must be an integer >= 1, got {value!r}")
    if time_budget_s is not None and (isinstance(time_budget_s, bool) or not isinstance(time_budget_s, (int, float))
                                      or not math.isfinite(time_budget_s) or time_budget_s <= 0):
        raise SearchError(f"--wall-time must be a positive duration, got {time_budget_s!r}")


def format_duration(seconds: float) -> str:
    s = float(seconds)
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"
