"""ONNX Runtime, CPU execution provider, full graph optimisation (what a server/desktop app runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from profilers._common import BaseProfiler
from profilers._ort import LEVELS, OPSET, export_onnx, make_session, session_options, time_session
from profilers.base import Measurement, ProfilerConfigError


def ort_missing() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed: pip install onnx onnxruntime"
    return None


class OrtCPUProfiler(BaseProfiler):
    name = "ort-cpu"
    measures_onnx_files = True
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, opt_level: str = "all",
                 providers: tuple[str, ...] | None = None):
        super().__init__(threads, pin_cpu, policy)
        if opt_level not in LEVELS:
            raise ProfilerConfigError(f"opt_level must be one of {sorted(LEVELS)}, got {opt_level!r}")
        self.opt_level = opt_level
        if providers is not None:
            self.providers = tuple(providers)

    def availability(self) -> str | None:
        return ort_missing()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "opt_level": self.opt_level, "opset": OPSET,
                "providers_requested": list(self.providers), "format": "onnx"}

    def _device(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"device": "cpu", "providers_available": ort.get_available_providers()}

    def session(self, model: bytes | str | Path):
        return make_session(model, self.providers, session_options(self.threads, self.opt_level))

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        sess = self.session(export_onnx(module, input_shape))
        return time_session(sess, input_shape, self.policy)

    def measure_onnx(self, path: str | Path) -> Measurement:
        """Time an ONNX file a user brings, with the same settings the LUT entries used."""
        with self.applied():
            return time_session(self.session(Path(path)), None, self.policy)
