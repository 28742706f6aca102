"""Settings every built-in profiler shares: threads, pinning, timing policy."""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any, Iterator

from hwnas.profilers._host import host_fingerprint, pin_to_cpu, pinning_plan, process_state, restore_process_state
from hwnas.profilers.base import Measurement, ProfilerConfigError, ProfilerUnavailable, TimingPolicy


class BaseProfiler:
    """The base class for profiler plugins (public as ``hwnas.profilers.BaseProfiler``): holds the settings
    (threads, pinning, timing policy), applies them only while measuring, and has every optional member of
    the :class:`hwnas.profilers.base.Profiler` protocol. Subclasses implement ``availability``, ``_device`` and
    ``_measure``; one that times model files sets ``measures_onnx_files`` and overrides ``measure_onnx``."""

    name = "base"
    measures_onnx_files = False  # measure_onnx(path) times an exported ONNX file
    measures_ort_format = False  # ... and .ort files, which is what the device runs
    measures_openvino_ir = False  # ... and OpenVINO IR (model.xml beside model.bin), which finalize writes
    measures_tflite_files = False  # measure_onnx(path) times .tflite files (LiteRT), not ONNX

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy: TimingPolicy | None = None):
        if threads < 1:
            raise ProfilerConfigError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.pin_cpu = pin_cpu
        self.policy = policy or TimingPolicy()
        self._prepared = False
        self._pinning = pinning_plan(pin_cpu)  # checked now, applied only while measuring

    def availability(self) -> str | None:  # pragma: no cover - overridden
        return None

    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads, "pinning": self._pinning, "policy": asdict(self.policy)}

    def fingerprint(self) -> dict[str, Any]:
        return {**host_fingerprint(), "profiler": self.name, **self._device(), **self.settings()}

    def _device(self) -> dict[str, Any]:
        return {}

    def prepare(self) -> None:
        """Apply the process-wide settings (pinning, threads, allocator) for the rest of this process.

        Only a measuring worker process calls this: a process that goes on to train or search must
        not be pinned. Everything else measures inside :meth:`applied`, which restores the settings.
        """
        if self._prepared:
            return
        reason = self.availability()
        if reason:
            raise ProfilerUnavailable(f"profiler {self.name!r} is unavailable: {reason}")
        self._pinning = pin_to_cpu(self.pin_cpu)
        self._prepare()
        self._prepared = True

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The profiler's process settings for the duration of the block, then this process's own again.

        A no-op inside a worker that called :meth:`prepare` (or an enclosing ``applied``).
        """
        if self._prepared:
            yield
            return
        saved = process_state()
        try:
            self.prepare()
            yield
        finally:
            self._prepared = False
            restore_process_state(saved)

    def _prepare(self) -> None:
        pass

    def measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        with self.applied():
            return self._measure(module, tuple(input_shape))

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:  # pragma: no cover
        raise NotImplementedError

    def measure_onnx(self, path: Any) -> Measurement:
        """Time an exported model file with these settings (profilers with ``measures_onnx_files``)."""
        raise ProfilerConfigError(f"profiler {self.name!r} times PyTorch modules, not ONNX files")


CAPABILITIES = ("measures_onnx_files", "measures_ort_format", "measures_openvino_ir", "measures_tflite_files")
FILE_KINDS = {".onnx": "measures_onnx_files", ".ort": "measures_onnx_files", ".xml": "measures_openvino_ir",
              ".tflite": "measures_tflite_files"}  # a model file's suffix -> the capability that times it


def takes_file(profiler: Any, path: Any) -> bool:
    """Whether ``profiler`` times the model file at ``path`` (by its suffix; any other suffix is taken as ONNX).
    An ``.ort`` file is ONNX Runtime's own: every profiler of ONNX files but OpenVINO's loads it (through ORT)."""
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix == ".ort" and capability(profiler, "measures_openvino_ir"):
        return False
    return capability(profiler, FILE_KINDS.get(suffix, "measures_onnx_files"))


def file_kinds(profiler: Any) -> list[str]:
    """The model-file suffixes ``profiler`` times (for messages)."""
    return [suffix for suffix in FILE_KINDS if takes_file(profiler, f"model{suffix}")]


def capability(profiler: Any, name: str) -> bool:
    """Whether ``profiler`` (an instance or a class) declares the optional capability ``name``: False when
    it does not say. Callers ask this, never a profiler's name."""
    if name not in CAPABILITIES:
        raise ValueError(f"unknown profiler capability {name!r}; known: {CAPABILITIES}")
    cls = profiler if isinstance(profiler, type) else type(profiler)
    if not isinstance(profiler, type) and name in vars(profiler):
        return bool(vars(profiler)[name])
    for klass in cls.__mro__:
        if klass is BaseProfiler:
            break
        if name in vars(klass):
            return bool(vars(klass)[name])
    if name == "measures_onnx_files":  # a plugin written before the flags: its own measure_onnx says it
        own = getattr(cls, "measure_onnx", None)
        return own is not None and own is not getattr(BaseProfiler, "measure_onnx", None)
    return False
