"""Find profilers by name: the built-ins and plugins from the ``hwnas.profilers`` entry-point group.

An outside package adds a device by declaring, in its own pyproject::

    [project.entry-points."hwnas.profilers"]
    my-npu = "my_package.npu:NPUProfiler"

Nothing is imported until a profiler is asked for by name or listed.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from profilers.base import Profiler, ProfilerConfigError, capability

GROUP = "hwnas.profilers"
BUILTIN = {
    "torch-cpu": "profilers.torch_cpu:TorchCPUProfiler",
    "torch-cuda": "profilers.torch_cuda:TorchCUDAProfiler",
    "ort-cpu": "profilers.ort_cpu:OrtCPUProfiler",
    "ort-mobile": "profilers.ort_mobile:OrtMobileProfiler",
}


@dataclass(frozen=True)
class ProfilerInfo:
    name: str
    source: str            # "builtin" or the distribution that registered it
    target: str            # "module:Class"
    unavailable: str | None  # None when usable here, else why not


def _targets() -> dict[str, tuple[str, str]]:
    found = {name: ("builtin", target) for name, target in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue  # our own pyproject re-declares the built-ins; a plugin cannot shadow them
        dist = getattr(ep, "dist", None)
        found[ep.name] = (dist.name if dist is not None else "entry point", ep.value)
    return found


def _load(target: str) -> type:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_profiler_class(name: str) -> type:
    targets = _targets()
    if name not in targets:
        raise ProfilerConfigError(f"unknown profiler {name!r}; known: {sorted(targets)} "
                       f"(plugins register under the {GROUP!r} entry-point group)")
    return _load(targets[name][1])


def create_profiler(name: str, **options: Any) -> Profiler:
    profiler = get_profiler_class(name)(**options)
    if not isinstance(profiler, Profiler):
        raise TypeError(f"profiler {name!r} does not implement the Profiler protocol "
                        f"(name, availability, fingerprint, measure)")
    if capability(profiler, "measures_ort_format") and not capability(profiler, "measures_onnx_files"):
        raise TypeError(f"profiler {name!r} says it measures .ort files (measures_ort_format) but not model files "
                        f"(measures_onnx_files); set both")
    if capability(profiler, "measures_onnx_files") and not callable(getattr(profiler, "measure_onnx", None)):
        raise TypeError(f"profiler {name!r} says it measures ONNX files (measures_onnx_files) but has no "
                        f"measure_onnx(path)")
    return profiler


def list_profilers() -> list[ProfilerInfo]:
    out = []
    for name, (source, target) in sorted(_targets().items()):
        try:
            reason = get_profiler_class(name)().availability()
        except Exception as e:  # a broken plugin is listed with its error, not allowed to hide the others
            reason = f"failed to load: {type(e).__name__}: {e}"
        out.append(ProfilerInfo(name, source, target, reason))
    return out
