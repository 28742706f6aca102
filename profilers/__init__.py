"""Device profilers: time a module (a block or a whole network) on one device/runtime.

Each plugin implements :class:`profilers.base.Profiler`; :mod:`profilers.registry`
finds the built-ins and any plugin another package registers under the
``hwnas.profilers`` entry-point group. Nothing here imports ``hwnas``.
"""
from profilers.base import Measurement, Profiler, ProfilerConfigError, ProfilerUnavailable, ProviderFallbackError
from profilers.registry import create_profiler, get_profiler_class, list_profilers

__all__ = [
    "Measurement",
    "Profiler",
    "ProfilerConfigError",
    "ProfilerUnavailable",
    "ProviderFallbackError",
    "create_profiler",
    "get_profiler_class",
    "list_profilers",
]
