"""When two measurements of one item agree: the rule every measuring path applies (live in fresh processes,
replayed from an offline bundle's timings, the drift reference), so they decide alike."""
from __future__ import annotations

from typing import Any, Sequence

from hwnas.profilers.base import TimingPolicy

AGREE = 0.05        # two fresh processes "agree" when their medians are within 5 % of each other
EXTRA_PASSES = 3    # at most this many more passes for the items whose processes disagree


def agreement_tolerance(options: dict[str, Any], floor: float = AGREE) -> float:
    """How close two processes' medians must be: ``floor``, or 4x the timing policy's target for the precision
    of a median when that is looser (the quick policy, +-3 %: 12 %). Slow spells cost 40-110 %, so either
    catches them, and short previews and tests are not re-measured for their own timing noise."""
    target = TimingPolicy.of(options.get("policy")).target_rel_ci
    return max(floor, 4.0 * target) if target else floor


def agreeing(medians: Sequence[float], tolerance: float = AGREE) -> bool:
    """Whether the two lowest of ``medians`` (one per fresh process) agree within ``tolerance``."""
    low = sorted(medians)[:2]
    return len(low) == 2 and low[1] <= low[0] * (1.0 + tolerance)
