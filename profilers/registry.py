"""Find profilers by name: the built-ins and plugins from the ``hwnas.profilers`` entry-point group.

An outside package adds a device by declaring, in its own pyproject::

    [project.entry-points."hwnas.profilers"]
    my-npu = "my_package.npu:NPUProfiler"

Nothing is imported until a profiler is asked for by name or listed.
"""
from __future__ import annotations

from typing import Any

from hwnas.profilers._common import capability
from hwnas.profilers.base import Profiler, ProfilerConfigError
from hwnas.core.registry import PluginInfo, Registry

GROUP = "hwnas.profilers"
BUILTIN = {  # named here, not by decorators in their modules: nothing of a profiler is imported to list it
    "torch-cpu": "hwnas.profilers.torch_cpu:TorchCPUProfiler",
    "torch-cuda": "hwnas.profilers.torch_cuda:TorchCUDAProfiler",
    "torch-cuda-graph": "hwnas.profilers.torch_cuda:TorchCUDAGraphProfiler",
    "ort-cpu": "hwnas.profilers.ort_cpu:OrtCPUProfiler",
    "ort-mobile": "hwnas.profilers.ort_mobile:OrtMobileProfiler",
    "openvino-cpu": "hwnas.profilers.openvino_cpu:OpenVINOCPUProfiler",
    "litert-cpu": "hwnas.profilers.litert_cpu:LiteRTCPUProfiler",
}
PROFILERS = Registry("profiler", GROUP, ProfilerConfigError, available=lambda cls: cls().availability())
for _name, _target in BUILTIN.items():
    PROFILERS.register(_name, _target)


def get_profiler_class(name: str) -> type:
    return PROFILERS.get(name)


def create_profiler(name: str, **options: Any) -> Profiler:
    profiler = PROFILERS.create(name, **options)
    if not isinstance(profiler, Profiler):
        raise TypeError(f"profiler {name!r} does not implement the Profiler protocol "
                        f"(name, availability, fingerprint, measure)")
    if capability(profiler, "measures_ort_format") and not capability(profiler, "measures_onnx_files"):
        raise TypeError(f"profiler {name!r} says it measures .ort files (measures_ort_format) but not model files "
                        f"(measures_onnx_files); set both")
    if capability(profiler, "measures_openvino_ir") and not capability(profiler, "measures_onnx_files"):
        raise TypeError(f"profiler {name!r} says it measures OpenVINO IR (measures_openvino_ir) but not model files "
                        f"(measures_onnx_files); set both")
    if capability(profiler, "measures_tflite_files") and not callable(getattr(profiler, "measure_onnx", None)):
        raise TypeError(f"profiler {name!r} says it measures .tflite files (measures_tflite_files) but has no "
                        f"measure_onnx(path)")
    if capability(profiler, "measures_onnx_files") and not callable(getattr(profiler, "measure_onnx", None)):
        raise TypeError(f"profiler {name!r} says it measures ONNX files (measures_onnx_files) but has no "
                        f"measure_onnx(path)")
    return profiler


def list_profilers() -> list[PluginInfo]:
    """Every profiler with where it came from and, when it cannot run here, why (a broken plugin: its error)."""
    return PROFILERS.infos()
