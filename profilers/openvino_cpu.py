"""OpenVINO on its CPU plugin: what an Intel/AMD desktop, server or edge box running OpenVINO runs.

Each block or network is exported to ONNX exactly as the ORT profilers export it (hwnas.profilers._ort), and
OpenVINO reads that ONNX and compiles it with ``PERFORMANCE_HINT`` LATENCY, ``INFERENCE_NUM_THREADS`` = threads and
f32 inference precision (hwnas_agent.openvino_runtime, the same code the device agent runs). Finalize writes the
OpenVINO IR (model.xml/model.bin) and times that.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.profilers._ort import OPSET, export_onnx
from hwnas.profilers._remote import DeviceFileProfiler
from hwnas.profilers.base import Measurement, ProfilerConfigError, time_callable
from hwnas_agent import openvino_runtime as ovr

INSTALL = "pip install 'hwnas[openvino]' (or: pip install openvino)"


def openvino_missing() -> str | None:
    return None if ovr.version() is not None else f"openvino is not installed: {INSTALL}"


class OpenVINOCPUProfiler(DeviceFileProfiler):
    """OpenVINO's CPU plugin, latency hint, ``threads`` inference threads, f32; ONNX exported as for ort-cpu."""

    name = "openvino-cpu"
    measures_onnx_files = True    # measure_onnx takes .onnx files and OpenVINO IR (.xml beside its .bin)
    measures_openvino_ir = True   # finalize writes model.xml/model.bin and times it
    precisions = ("fp32",)
    runtime = "openvino"

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, device: str | None = None,
                 token_file: str | None = None):
        super().__init__(threads, pin_cpu, policy, device, token_file)

    def availability(self) -> str | None:
        return (None if self.remote is not None else openvino_missing()) or self.device_problem()

    def runtime_settings(self) -> dict[str, Any]:
        return {"openvino_config": ovr.config(self.threads)}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), **self.runtime_settings(), "device_plugin": ovr.DEVICE, "opset": OPSET,
                "format": "onnx read by OpenVINO (finalize: OpenVINO IR)", "precision": "fp32", **self.transport()}

    def _device(self) -> dict[str, Any]:
        if self.remote is not None:
            return {"device": "cpu", **self.device_runtime()}
        return {"device": "cpu", **ovr.device_facts()}

    def model_file(self, module: Any, input_shape: tuple[int, ...]) -> tuple[bytes, str]:
        """What the device is sent for ``module``: its ONNX export, which OpenVINO reads itself."""
        return export_onnx(module, input_shape), "openvino"

    def _time(self, data: bytes) -> Measurement:
        if self.remote is not None:
            return self.time_on_device(data, "openvino")
        return time_callable(ovr.runner(ovr.compile_model(data, self.threads)), self.policy)

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        return self._time(self.model_file(module, input_shape)[0])

    def measure_onnx(self, path: str | Path) -> Measurement:
        """Time an ONNX file or an OpenVINO IR (``model.xml``, its ``model.bin`` beside it) with these settings."""
        path = Path(path)
        data = ovr.read_ir_files(path) if path.suffix == ".xml" else path.read_bytes()
        with self.applied():
            return self._time(data)
