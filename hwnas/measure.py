"""Measure whole networks end-to-end with the profiler (and settings) a LUT was built with."""
from __future__ import annotations

import sys
from typing import Any

from hwnas.blocks import build_model
from hwnas.lut import LUT, fingerprint_diff
from hwnas.space import Arch
from profilers import Measurement, ProfilerUnavailable, create_profiler


def profiler_for(lut: LUT, **overrides: Any):
    """The LUT's profiler with the LUT's thread count (pinning/policy may be overridden)."""
    opts = {"threads": lut.settings.get("threads", 1), **overrides}
    profiler = create_profiler(lut.profiler, **opts)
    reason = profiler.availability()
    if reason:
        raise ProfilerUnavailable(f"the LUT's profiler {lut.profiler!r} is unavailable here: {reason}")
    return profiler


def warn_if_foreign(lut: LUT, profiler: Any, stream=sys.stderr) -> dict:
    """Loudly say which fingerprint fields differ: measured vs predicted is then not a fair comparison."""
    if hasattr(profiler, "prepare"):
        profiler.prepare()
    diff = fingerprint_diff(lut.fingerprint, profiler.fingerprint())
    if diff:
        lines = "\n".join(f"    {k}: LUT {a!r} vs here {b!r}" for k, (a, b) in diff.items())
        print(f"WARNING: measuring on a different device/profiler than the one that built {lut.path}; "
              f"measured and predicted latencies are not comparable:\n{lines}", file=stream)
    return diff


def measure_arch(profiler: Any, arch: Arch, rounds: int = 1) -> Measurement:
    """End-to-end latency; with ``rounds`` > 1 keep the round with the lowest median.

    Interference from other work on a shared machine only ever adds time, so the
    calmest of a few rounds estimates the device's own latency best.
    """
    model = build_model(arch)
    shape = (1, arch.space.in_channels, arch.resolution, arch.resolution)
    return min((profiler.measure(model, shape) for _ in range(max(1, rounds))), key=lambda m: m.median_ms)
