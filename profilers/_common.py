"""Settings every built-in profiler shares: threads, pinning, timing policy."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from profilers._host import host_fingerprint, pin_to_cpu
from profilers.base import Measurement, ProfilerUnavailable, TimingPolicy


class BaseProfiler:
    """Holds the settings; subclasses implement ``availability``, ``_device`` and ``_measure``."""

    name = "base"

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy: TimingPolicy | None = None):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.pin_cpu = pin_cpu
        self.policy = policy or TimingPolicy()
        self._prepared = False
        self._pinning = "not pinned"

    def availability(self) -> str | None:  # pragma: no cover - overridden
        return None

    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads, "pinning": self._pinning, "policy": asdict(self.policy)}

    def fingerprint(self) -> dict[str, Any]:
        return {**host_fingerprint(), "profiler": self.name, **self._device(), **self.settings()}

    def _device(self) -> dict[str, Any]:
        return {}

    def prepare(self) -> None:
        """Apply process-wide settings once (threads, pinning, allocator)."""
        if self._prepared:
            return
        reason = self.availability()
        if reason:
            raise ProfilerUnavailable(f"profiler {self.name!r} is unavailable: {reason}")
        self._pinning = pin_to_cpu(self.pin_cpu)
        self._prepare()
        self._prepared = True

    def _prepare(self) -> None:
        pass

    def measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        self.prepare()
        return self._measure(module, tuple(input_shape))

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:  # pragma: no cover
        raise NotImplementedError
