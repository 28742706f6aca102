"""Replaying an offline bundle's recorded timings: what ``measure_isolated`` returns for ``--device timings:FILE``
(hwnas.measuring.isolate calls :func:`replay`), each pass taking an item's next recorded run, so the lowest-median
and agreement rules give what they would have given live."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.core.errors import InputError
from hwnas.measuring.stability import EXTRA_PASSES, agreeing, agreement_tolerance
from hwnas.profilers import Measurement
from hwnas.profilers._remote import REPLAY


class BundleError(InputError):
    """A bundle or timings file that does not belong to this command; the message says what to do."""


_CURSORS: dict[str, dict[str, int]] = {}
_TIMINGS: dict[str, dict[str, Any]] = {}


def replay(device: str, kind: str, items: Sequence[Any], space_dict: dict | None, passes: int,
           on_result: Callable[[int, Measurement, int], None] | None, agree: float | None,
           options: dict[str, Any]) -> list[Measurement]:
    """What ``measure_isolated`` returns, from the recorded runs: each pass takes an item's next run."""
    path = device[len(REPLAY):]
    if path not in _TIMINGS:
        _TIMINGS[path] = json.loads(Path(path).read_text())["results"]
        _CURSORS[path] = {}
    results, cursor = _TIMINGS[path], _CURSORS[path]
    if kind == "layer":
        ids = list(items)
    elif kind == "arch":
        from hwnas.spaces.base import space_from_dict

        space = space_from_dict(space_dict)
        ids = [f"arch:{space.arch_from_dict(a).id}" for a in items]
    else:
        raise BundleError("an offline bundle's timings hold its blocks and networks only; measure other files "
                          "on the device with hwnas-agent, or through --device tcp://HOST:PORT")
    missing = [i for i in ids if i not in results]
    if missing:
        raise BundleError(f"the timings have no measurement of {missing[0]!r} ({len(missing)} missing): the bundle "
                          f"was exported with other flags; export it again with these")
    best: list[Measurement | None] = [None] * len(ids)
    medians: list[list[float]] = [[] for _ in ids]

    def take(i: int, p: int, strict: bool) -> bool:
        runs = results[ids[i]]["runs"]
        k = cursor.get(ids[i], 0)
        if k >= len(runs) and strict:
            return False
        m = Measurement(**runs[k]) if k < len(runs) else min((Measurement(**r) for r in runs),
                                                               key=lambda x: x.median_ms)
        cursor[ids[i]] = k + 1
        medians[i].append(m.median_ms)
        if best[i] is None or m.median_ms < best[i].median_ms:
            best[i] = m
        if on_result is not None:
            on_result(i, best[i], p + 1)
        return True

    for p in range(passes):
        for i in range(len(ids)):
            take(i, p, strict=False)
    if passes >= 2 and agree is not None:
        tolerance = agreement_tolerance(options, agree)
        for p in range(passes, passes + EXTRA_PASSES):
            todo = [i for i in range(len(ids)) if not agreeing(medians[i], tolerance)]
            if not [i for i in todo if take(i, p, strict=True)]:
                break
    return [m for m in best if m is not None]
