"""LiteRT (TensorFlow Lite) on the CPU: what an Android or embedded-Linux app with the LiteRT Interpreter runs.

Times ``.tflite`` files with ai-edge-litert's ``Interpreter`` (``num_threads`` = threads, the XNNPACK delegate unless
``xnnpack=False``; hwnas_agent.litert_runtime, the same code the device agent runs). Blocks and networks are
converted from PyTorch with litert-torch when it is installed (no TensorFlow; heavy: docs/profiling.md, "LiteRT");
without it, the profiler times ``.tflite`` files it is given (``hwnas measure model.tflite``), here or through the
agent, and a LUT's blocks are converted and timed where litert-torch is installed (an offline bundle).
"""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from hwnas.profilers._remote import DeviceFileProfiler
from hwnas.profilers.base import Measurement, ProfilerConfigError, ProfilerUnavailable, time_callable
from hwnas_agent import litert_runtime as lr

INSTALL = "pip install 'hwnas[litert]' (or: pip install ai-edge-litert)"
CONVERTER = "litert-torch"
CONVERTER_INSTALL = ("pip install litert-torch -c constraints.txt (about 935 MB: jaxlib, litert-converter, transformers; keeps the torch "
                     "pin); or convert elsewhere and time the .tflite files (docs/profiling.md, 'LiteRT')")


def litert_missing() -> str | None:
    return None if lr.version() is not None else f"ai-edge-litert is not installed: {INSTALL}"


def converter_version() -> str | None:
    """litert-torch's version, None when it is not installed (then blocks cannot be converted here)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(CONVERTER)
    except PackageNotFoundError:
        return None


def to_tflite(module: Any, input_shape: tuple[int, ...]) -> bytes:
    """``module`` as a ``.tflite`` flatbuffer (litert-torch: torch.export, then LiteRT's converter), float32, its
    input as PyTorch's (NCHW; the converter puts the layout changes inside the model)."""
    if converter_version() is None:
        raise ProfilerUnavailable(f"litert-cpu converts PyTorch blocks with {CONVERTER}, which is not installed: "
                                  f"{CONVERTER_INSTALL}")
    import torch

    sink = io.StringIO()
    logging.getLogger("absl").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        import litert_torch

        edge = litert_torch.convert(module.eval().to("cpu"), (torch.zeros(*input_shape),))
        return bytes(edge.model_content())


class LiteRTCPUProfiler(DeviceFileProfiler):
    """LiteRT's Interpreter on the CPU, ``threads`` threads, XNNPACK delegate on (``xnnpack=False``: off)."""

    name = "litert-cpu"
    measures_onnx_files = False  # said, not left to capability()'s rule for plugins older than the flags
    measures_tflite_files = True  # measure_onnx(path) times .tflite files; ONNX files it does not run
    precisions = ("fp32",)
    runtime = "ai_edge_litert"

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, xnnpack: bool = True,
                 device: str | None = None, token_file: str | None = None):
        super().__init__(threads, pin_cpu, policy, device, token_file)
        self.xnnpack = bool(xnnpack)

    def availability(self) -> str | None:
        return (None if self.remote is not None else litert_missing()) or self.device_problem()

    def runtime_settings(self) -> dict[str, Any]:
        return {"xnnpack": self.xnnpack}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), **self.runtime_settings(), "format": "tflite", "precision": "fp32",
                "converter": self.converter(), **self.transport()}

    def converter(self) -> str | None:
        """What converts the blocks: litert-torch here, or, for an imported bundle's timings, what converted it
        where it was exported; None when nothing converts (only given .tflite files are timed)."""
        exported = getattr(self.remote, "exported_with", None)
        if exported is not None and exported().get("converter"):
            return exported()["converter"]
        return f"{CONVERTER} {converter_version()}" if converter_version() else None

    def _device(self) -> dict[str, Any]:
        version = self.device_runtime().get("ai_edge_litert") if self.remote is not None else lr.version()
        return {"device": "cpu", "ai_edge_litert": version,
                "kernels": "XNNPACK delegate" if self.xnnpack else "built-in kernels (no default delegate)"}

    def model_file(self, module: Any, input_shape: tuple[int, ...]) -> tuple[bytes, str]:
        """What the device runs for ``module``: its ``.tflite`` conversion (needs litert-torch here)."""
        return to_tflite(module, input_shape), "tflite"

    def _time(self, data: bytes) -> Measurement:
        if self.remote is not None:
            return self.time_on_device(data, "tflite")
        return time_callable(lr.runner(lr.interpreter(data, self.threads, self.xnnpack)), self.policy)

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        return self._time(self.model_file(module, input_shape)[0])

    def measure_onnx(self, path: str | Path) -> Measurement:
        """Time a ``.tflite`` file with these settings (its input shape is fixed)."""
        if Path(path).suffix.lower() != ".tflite":
            raise ProfilerConfigError(f"litert-cpu times .tflite files, not {Path(path).name}")
        with self.applied():
            return self._time(Path(path).read_bytes())
