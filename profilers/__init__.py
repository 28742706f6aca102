"""Device profilers: time a module (a block or a whole network) on one device/runtime.

Each plugin implements :class:`hwnas.profilers.base.Profiler` (most by subclassing
:class:`BaseProfiler`); :mod:`hwnas.profilers.registry` finds the built-ins and any plugin
another package registers under the ``hwnas.profilers`` entry-point group.
Nothing here imports the rest of ``hwnas`` but ``hwnas.core`` (the registry).
"""
from hwnas.profilers._common import BaseProfiler, capability
from hwnas.profilers.base import (Measurement, OnnxFileProfiler, Profiler, ProfilerConfigError, ProfilerUnavailable,
                                  ProviderFallbackError)
from hwnas.profilers.registry import create_profiler, get_profiler_class, list_profilers

__all__ = [
    "BaseProfiler",
    "Measurement",
    "OnnxFileProfiler",
    "Profiler",
    "ProfilerConfigError",
    "ProfilerUnavailable",
    "ProviderFallbackError",
    "capability",
    "create_profiler",
    "get_profiler_class",
    "list_profilers",
]
