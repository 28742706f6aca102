"""What an ONNX Runtime mobile build runs: the ORT-format model, 1 thread, a mobile EP when present.

The model is converted with onnxruntime's own converter (default target, which
leaves out the x86-only NCHWc layout), and NNAPI / CoreML / XNNPACK are used when
this onnxruntime build offers them. The PyPI wheel offers none, so on a desktop
this profiles the portable CPU kernels of the mobile model; ``providers_used``
in the fingerprint records what actually ran.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from hwnas.profilers._ort import OPSET, export_onnx, make_session, time_session
from hwnas.profilers.ort_cpu import OrtCPUProfiler
from hwnas.profilers.base import Measurement

MOBILE_PROVIDERS = ("NnapiExecutionProvider", "CoreMLExecutionProvider", "XnnpackExecutionProvider")


def detect_mobile_providers() -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in MOBILE_PROVIDERS if p in have]


def convert_to_ort(onnx_model: bytes | Path, out_dir: Path, target_platform: str | None = None) -> Path:
    """Run onnxruntime.tools.convert_onnx_models_to_ort (fixed optimisations, default target unless
    ``target_platform``: ``arm`` lets int8 QDQ fuse as on an Arm phone)."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "model.onnx"
    if isinstance(onnx_model, Path):
        src.write_bytes(onnx_model.read_bytes())
    else:
        src.write_bytes(onnx_model)
    quiet = logging.getLogger("ort_format_model.utils")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            convert_onnx_models_to_ort(src, output_dir=out_dir, optimization_styles=[OptimizationStyle.Fixed],
                                       target_platform=target_platform)
    finally:
        quiet.setLevel(level)
    ort_file = out_dir / "model.ort"
    if not ort_file.is_file():
        raise RuntimeError(f"ORT-format conversion wrote no {ort_file}")
    return ort_file


def int8_target(activations: str) -> str | None:
    """The converter's target for an int8 model: ``arm`` for symmetric int8 activations (the Arm rule of
    hwnas.profilers._quant), whose QDQ nodes then fuse as on an Arm phone; else the default target."""
    return "arm" if activations == "int8" else None


class OrtMobileProfiler(OrtCPUProfiler):
    """What an ONNX Runtime mobile build runs: the ORT-format model, one thread, a mobile EP when present."""

    name = "ort-mobile"
    measures_ort_format = True  # the device runs the ORT-format model (measures_onnx_files: from OrtCPUProfiler)

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None,
                 providers: tuple[str, ...] | None = None, device: str | None = None,
                 token_file: str | None = None, pair_with: str | None = None, pair_calm_ms: float | None = None,
                 precision: str = "fp32"):
        super().__init__(threads, pin_cpu, policy, opt_level="all", device=device, token_file=token_file,
                         pair_with=pair_with, pair_calm_ms=pair_calm_ms, precision=precision)
        if providers is None and self.remote is not None:  # what the device's onnxruntime offers, not the host's
            offered = [] if self.availability() else self.remote.fingerprint().get("providers_available") or []
            mobile = tuple(p for p in MOBILE_PROVIDERS if p in offered)
        else:
            mobile = tuple(detect_mobile_providers()) if providers is None and not self.availability() else ()
        self.providers = tuple(providers) if providers is not None else (*mobile, "CPUExecutionProvider")

    def settings(self) -> dict[str, Any]:
        target = self.target_platform() or "default"
        return {**super().settings(), "format": f"ort (convert_onnx_models_to_ort, fixed, {target} target)",
                "opt_level": "baked in at conversion (all, NCHWc excluded)"}

    def target_platform(self) -> str | None:
        """``arm`` for int8 on an Arm device (QDQ fused as there), else the converter's default target."""
        return int8_target(self.quant_settings().activations) if self.precision == "int8" else None

    def _device(self) -> dict[str, Any]:
        return {**super()._device(), "providers_used": list(self.providers)}

    def session_from_ort(self, ort_file: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.add_session_config_entry("session.load_model_format", "ORT")
        return make_session(ort_file, self.providers, so)

    def model_file(self, module: Any, input_shape: tuple[int, ...]) -> tuple[bytes, str]:
        """The ORT-format model of ``module``, converted here as for local timing: what the device runs."""
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            model = self.fp32_or_int8(export_onnx(module, input_shape, OPSET), input_shape)
            return convert_to_ort(model, Path(tmp), self.target_platform()).read_bytes(), "ort"

    def _measure_model(self, model: bytes | Path, input_shape: tuple[int, ...] | None) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            ort_file = convert_to_ort(model, Path(tmp), self.target_platform())
            if self.remote is not None:  # converted here, as for local timing; the device runs the .ort file
                return self._remote_time(ort_file.read_bytes(), "ort")
            sess = self.session_from_ort(ort_file)
            return time_session(sess, input_shape, self.policy, self.pair())

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        return self._measure_model(self.fp32_or_int8(export_onnx(module, input_shape, OPSET), input_shape),
                                   input_shape)

    def measure_onnx(self, path: str | Path) -> Measurement:
        path = Path(path)
        with self.applied():
            if path.suffix == ".ort":
                if self.remote is not None:
                    return self._remote_time(path.read_bytes(), "ort")
                return time_session(self.session_from_ort(path), None, self.policy, self.pair())
            return self._measure_model(path, None)
