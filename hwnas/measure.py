"""Measure whole networks end-to-end with the profiler (and settings) a LUT was built with."""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

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


def warn_if_foreign(lut: LUT, profiler: Any, stream=sys.stderr, prepare: bool = True) -> dict:
    """Loudly say which fingerprint fields differ: measured vs predicted is then not a fair comparison.

    ``prepare=False`` when the measuring happens in other processes: prepare() pins and sets threads for
    *this* process, which would slow whatever it does next.
    """
    if prepare and hasattr(profiler, "prepare"):
        profiler.prepare()
    diff = fingerprint_diff(lut.fingerprint, profiler.fingerprint())
    if diff:
        lines = "\n".join(f"    {k}: LUT {a!r} vs here {b!r}" for k, (a, b) in diff.items())
        print(f"WARNING: measuring on a different device/profiler than the one that built {lut.path}; "
              f"measured and predicted latencies are not comparable:\n{lines}", file=stream)
    return diff


def measure_arch(profiler: Any, arch: Arch) -> Measurement:
    """End-to-end latency of the whole network, in this process."""
    return profiler.measure(build_model(arch), (1, arch.space.in_channels, arch.resolution, arch.resolution))


def arch_measurer(profiler_name: str, options: dict[str, Any], processes: int = 2,
                  progress: Any = None) -> Callable[[Sequence[Arch]], list[Measurement]]:
    """A function that measures archs end-to-end: in ``processes`` fresh processes (lowest median kept),
    or in this process when ``processes`` is 0. ``progress`` (a tqdm bar) is advanced per result."""
    if processes <= 0:
        profiler = create_profiler(profiler_name, **options)

        def in_process(archs: Sequence[Arch]) -> list[Measurement]:
            out = []
            for a in archs:
                out.append(measure_arch(profiler, a))
                if progress is not None:
                    progress.update(1)
            return out

        return in_process

    from hwnas.isolate import measure_isolated

    def isolated(archs: Sequence[Arch]) -> list[Measurement]:
        if not archs:
            return []
        tick = (lambda i, m, p: progress.update(1)) if progress is not None else None
        return measure_isolated(profiler_name, options, "arch", [a.to_dict() for a in archs],
                                space_dict=archs[0].space.to_dict(), passes=processes, chunk=10, on_result=tick)

    return isolated
