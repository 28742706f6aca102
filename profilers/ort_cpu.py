"""ONNX Runtime, CPU execution provider, full graph optimisation (what a server/desktop app runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.profilers._ort import (LEVELS, OPSET, export_onnx, make_session, session_options, session_runner,
                                  time_session)
from hwnas.profilers._quant import PRECISIONS, QuantSettings, choose_settings, quantize_qdq, random_batches
from hwnas.profilers._remote import DeviceFileProfiler, remote_settings
from hwnas.profilers.base import Measurement, ProfilerConfigError


RANDOM_CALIBRATION_TEXT = "8 seeded standard-normal inputs per block or network (MinMax)"


def ort_missing() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed: pip install onnx onnxruntime"
    return None


class OrtCPUProfiler(DeviceFileProfiler):
    """ONNX Runtime on the CPU execution provider (full graph optimisation unless ``opt_level`` says else)."""

    name = "ort-cpu"
    measures_onnx_files = True
    precisions = PRECISIONS  # fp32, int8 (static QDQ)
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, opt_level: str = "all",
                 providers: tuple[str, ...] | None = None, device: str | None = None,
                 token_file: str | None = None, pair_with: str | None = None, pair_calm_ms: float | None = None,
                 precision: str = "fp32"):
        # precision int8: every module is exported, quantized (static QDQ: hwnas.profilers._quant) and the int8
        # model timed; files given to measure_onnx are timed as they are (finalize quantizes its own).
        # device: time on that device's agent (tcp://HOST:PORT); pinning then happens there, by its own CPUs.
        # pair_with: an ONNX file timed in alternation with every model; results are scaled to its calm latency
        # pair_calm_ms (hwnas.measuring.pairing): a slow spell of the device stretches both, so it cancels.
        if (pair_with is None) != (pair_calm_ms is None) or (pair_calm_ms is not None and not pair_calm_ms > 0):
            raise ProfilerConfigError("pairing needs both pair_with (a reference ONNX file) and pair_calm_ms > 0")
        self.pair_with, self.pair_calm_ms = pair_with, pair_calm_ms
        self._pair = None
        super().__init__(threads, pin_cpu, policy, device, token_file)
        if opt_level not in LEVELS:
            raise ProfilerConfigError(f"opt_level must be one of {sorted(LEVELS)}, got {opt_level!r}")
        self.opt_level = opt_level
        if precision not in PRECISIONS:
            raise ProfilerConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._quant: QuantSettings | None = None
        if providers is not None:
            self.providers = tuple(providers)

    def availability(self) -> str | None:
        return ort_missing() or self.device_problem()

    def runtime_settings(self) -> dict[str, Any]:
        return {"opt_level": self.opt_level, "providers": list(self.providers)}

    def pair(self) -> Any:
        """(reference callable, calm ms) for local timing when pairing, else None; the session made once."""
        if self.pair_with is None:
            return None
        if self._pair is None:
            self._pair = (session_runner(make_session(Path(self.pair_with), ("CPUExecutionProvider",),
                                                      session_options(self.threads, "all"))), self.pair_calm_ms)
        return self._pair

    def _remote_time(self, data: bytes, fmt: str) -> Measurement:
        settings = remote_settings(self, fmt)
        if self.pair_with is None:
            return self.remote.time(data, settings)
        return self.remote.time(data, {**settings, "pair": {"calm_ms": self.pair_calm_ms}},
                                reference=Path(self.pair_with).read_bytes())

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "opt_level": self.opt_level, "opset": OPSET,
                "providers_requested": list(self.providers), "format": "onnx", **self.precision_settings(),
                **self.transport()}

    def precision_settings(self) -> dict[str, Any]:
        """``precision``, and for int8 how blocks and networks are quantized (finalize quantizes alike)."""
        if self.precision == "fp32":
            return {"precision": "fp32"}
        return {"precision": "int8", "quantization": {
            **self.quant_settings().to_dict(),
            "calibration_data": f"{RANDOM_CALIBRATION_TEXT}; finalize calibrates on the run's training images"}}

    def quant_settings(self) -> QuantSettings:
        """The quantization that suits the device timing the models (the agent's device, else this host)."""
        if self._quant is None:
            if self.remote is not None:
                fp = self.remote.fingerprint() if self.availability() is None else {}
                self._quant = choose_settings(fp.get("machine"), fp.get("cpu_flags"))
            else:
                import platform

                from hwnas.profilers._host import cpu_flags

                self._quant = choose_settings(platform.machine(), cpu_flags())
        return self._quant

    def fp32_or_int8(self, onnx_model: bytes, input_shape: tuple[int, ...]) -> bytes:
        """``onnx_model`` as this profiler times it: itself (fp32) or its QDQ int8 model, calibrated on random
        inputs of ``input_shape``."""
        if self.precision == "fp32":
            return onnx_model
        return quantize_qdq(onnx_model, random_batches(input_shape), self.quant_settings())

    def _device(self) -> dict[str, Any]:
        if self.remote is not None:
            return {"device": "cpu", "providers_available": self.remote.fingerprint().get("providers_available")}
        import onnxruntime as ort

        return {"device": "cpu", "providers_available": ort.get_available_providers()}

    def session(self, model: bytes | str | Path):
        return make_session(model, self.providers, session_options(self.threads, self.opt_level))

    def model_file(self, module: Any, input_shape: tuple[int, ...]) -> tuple[bytes, str]:
        """What this profiler times for ``module``, as a file a device agent can time: (bytes, format)."""
        return self.fp32_or_int8(export_onnx(module, input_shape), input_shape), "onnx"

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        if self.remote is not None:
            return self._remote_time(*self.model_file(module, input_shape))
        sess = self.session(self.fp32_or_int8(export_onnx(module, input_shape), input_shape))
        return time_session(sess, input_shape, self.policy, self.pair())

    def measure_onnx(self, path: str | Path) -> Measurement:
        """Time an ONNX file a user brings, with the same settings the LUT entries used."""
        if self.remote is not None:
            return self._remote_time(Path(path).read_bytes(), "onnx")
        with self.applied():
            return time_session(self.session(Path(path)), None, self.policy, self.pair())
