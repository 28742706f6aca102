"""Which networks a measurement uses (calibration, the drift reference, pairing's reference, bundles): seeded,
distinct, the extremes first, for any kind of space."""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Sequence


def sample_archs(space: Any, n: int, seed: int, resolutions: Sequence[int] | None = None,
                 exclude: set[str] | None = None, extremes: bool = True) -> list[Any]:
    """``n`` distinct archs of any kind of space (the smallest and largest first when ``extremes``), seeded,
    at ``resolutions`` (every arch kind has a ``resolution`` field)."""
    rng = random.Random(seed)
    resolutions = list(resolutions or space.resolutions)
    exclude = set(exclude or ())
    out: dict[str, Any] = {}
    if extremes:
        for a in (space.smallest(), space.largest()):
            a = replace(a, resolution=min(resolutions) if a.resolution == min(space.resolutions) else max(resolutions))
            if a.id not in exclude:
                out.setdefault(a.id, a)
    tries = 0
    while len(out) < n and tries < 100 * n:
        a = replace(space.sample(rng), resolution=rng.choice(resolutions))
        if a.id not in exclude:
            out.setdefault(a.id, a)
        tries += 1
    return list(out.values())[:n]
