"""The profiler protocol, the measurement record and the timing loop they share."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hwnas_agent.timing import Measurement, TimingPolicy, time_callable  # noqa: F401 - one timing loop, host and device

from hwnas.core.errors import EXIT_INPUT, EXIT_UNAVAILABLE, HwnasError


class ProfilerConfigError(HwnasError, ValueError):
    """An unknown profiler name or a setting it cannot take (threads, CPU to pin, optimisation level)."""

    exit_code = EXIT_INPUT


class ProfilerUnavailable(HwnasError, RuntimeError):
    """The profiler cannot run here; the message says why and what to do."""

    exit_code = EXIT_UNAVAILABLE


class ProviderFallbackError(HwnasError, RuntimeError):
    """ONNX Runtime ran on other execution providers than were asked for (it only warns by itself)."""

    exit_code = EXIT_UNAVAILABLE


@runtime_checkable
class Profiler(Protocol):
    """What a device plugin must provide. See docs/plugins.md for a worked example.

    Optional members (the public base class :class:`hwnas.profilers.BaseProfiler` has them all; hwnas reads the
    capability flags with :func:`capability`, so a plugin on this bare protocol that leaves them out has them
    False):

    - ``measures_onnx_files: bool`` -- ``measure_onnx(path)`` times an exported ONNX file with the same settings
      (``hwnas measure model.onnx``; finalize then times its ONNX file, not the PyTorch module it came from);
    - ``measures_ort_format: bool`` -- what the device runs is the ORT-format model: ``measure_onnx`` also takes
      ``.ort`` files, and finalize times its ``model.ort``;
    - ``measures_openvino_ir: bool`` -- ``measure_onnx`` also takes an OpenVINO IR (``model.xml``), which finalize
      then writes beside its ONNX, checks and times;
    - ``measures_tflite_files: bool`` -- ``measure_onnx`` times ``.tflite`` files (LiteRT) instead of ONNX;
    - ``settings() -> dict`` -- the settings part of the fingerprint (threads, pinning, timing policy);
    - ``prepare()`` -- apply pinning/threads for the rest of a measuring worker process's life;
    - ``applied()`` -- a context manager: those settings while measuring in this process, restored afterwards.
    """

    name: str

    def availability(self) -> str | None:
        """None when usable here, else the reason it is not (and what to do)."""

    def fingerprint(self) -> dict[str, Any]:
        """Device, versions, threads, providers, optimisation level: written into every LUT."""

    def measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        """Time ``module`` (a torch ``nn.Module``) on an input of ``input_shape``."""


@runtime_checkable
class OnnxFileProfiler(Profiler, Protocol):
    """A profiler with ``measures_onnx_files``: it also times exported model files."""

    measures_onnx_files: bool

    def measure_onnx(self, path: Any) -> Measurement:
        """Time the ONNX (or, with ``measures_ort_format``, ``.ort``) file at ``path``; its input shape is fixed."""
