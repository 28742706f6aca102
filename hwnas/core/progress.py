"""Progress for a person at a terminal and for a log file: one helper every long step draws through.

On a terminal (stderr is a TTY) :func:`progress` is a tqdm bar. Anywhere else (``> log.txt 2>&1``, a CI job, a
pipe) it is :class:`Lines`: a line when the step starts, every tenth of the way (or every ``every`` units), at
most once a minute while nothing else is said, and when it ends; never a carriage-return redraw. ``--quiet``
(:func:`set_quiet`) turns both off. ``HWNAS_PROGRESS=bar|lines|off`` overrides the choice.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO

_STATE = {"quiet": False}
INTERVAL_S = 60.0  # at most this long between two lines while a step goes on


def set_quiet(quiet: bool = True) -> None:
    """No progress at all, bars or lines (``--quiet``); results and errors are still printed."""
    _STATE["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _STATE["quiet"] or os.environ.get("HWNAS_PROGRESS") == "off"


def interactive(stream: TextIO | None = None) -> bool:
    """Whether progress may redraw a bar: ``stream`` (stderr, where progress goes) is a terminal."""
    forced = os.environ.get("HWNAS_PROGRESS")
    if forced in ("bar", "lines"):
        return forced == "bar"
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, every: int | None = None, **bar_options: Any) -> Any:
    """A tqdm bar on a terminal, :class:`Lines` elsewhere, a silent bar when ``disable`` or quiet. Both take
    tqdm's calls (update, set_postfix, set_postfix_str, write, close, iteration, ``with``). ``every``: a line
    every that many units when not on a terminal (0: none but the first, the last and the minute's) [a tenth
    of ``total``]; ``bar_options``: tqdm's own (ignored by :class:`Lines`)."""
    from tqdm.auto import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if disable or is_quiet():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    if interactive():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, **bar_options)
    return Lines(iterable, total=total, desc=desc, unit=unit, initial=initial, every=every)


def milestone(bar: Any, text: str) -> None:
    """A line of its own for a step's milestone (an epoch's accuracy) where progress is lines; on a terminal
    the bar's postfix already shows it, and nothing is said when quiet."""
    if isinstance(bar, Lines):
        bar.line(text)


def write(text: str, bar: Any = None) -> None:
    """A message on stderr that does not break a bar drawn on the terminal."""
    if bar is not None and not isinstance(bar, Lines) and not getattr(bar, "disable", True):
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


class Lines:
    """Progress as plain lines on stderr: ``DESC: N/TOTAL UNIT (P %), S s[, postfix]``."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, every: int | None = None, file: TextIO | None = None,
                 interval_s: float = INTERVAL_S):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self._said = initial
        self.every = every if every is not None else (max(1, total // 10) if total else 0)
        self.file, self.interval_s, self.postfix = file, interval_s, ""
        self.disable = False
        self._start = self._last = time.monotonic()
        self._closed = False
        self.line(f"started ({initial}/{total} {unit} done)" if initial and total else
                  "started" + (f" ({total} {unit})" if total else ""))

    def _out(self) -> TextIO:
        return self.file or sys.stderr

    def line(self, text: str) -> None:
        print(f"{self.desc}: {text}" if self.desc else text, file=self._out(), flush=True)
        self._last = time.monotonic()

    def _status(self) -> str:
        done = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)" if self.total else \
            f"{self.n} {self.unit}"
        return f"{done}, {time.monotonic() - self._start:.0f} s" + (f", {self.postfix}" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        step = self.every and self.n // self.every != self._said // self.every
        if step or (self.total and self.n >= self.total) or time.monotonic() - self._last >= self.interval_s:
            if self.n != self._said:
                self._said = self.n
                self.line(self._status())

    def _tick(self) -> None:
        if time.monotonic() - self._last >= self.interval_s:
            self.line(self._status())

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw: Any) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k} {v}" for k, v in items.items())
        self._tick()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        self._tick()

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def write(self, s: str, file: TextIO | None = None, **_: Any) -> None:
        print(s, file=file or self._out(), flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.total and self.n >= self.total and self.n == self._said:
            return  # the last update said it
        self._said = self.n
        self.line(("stopped at " if self.total and self.n < self.total else "done: ") + self._status())

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
