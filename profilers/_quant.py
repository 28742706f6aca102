"""Static int8 (QDQ) the one way hwnas quantizes: LUT blocks, whole networks and finalize's model.

The settings are chosen for the device that runs the model (its machine and CPU flags), recorded in the LUT and
reused by finalize, so the model a search was priced with and the model it ships are quantized alike; only the
calibration data differ (random inputs here, the run's training images in finalize). Latency does not depend on
the values of the scales and zero points a calibration picks: the kernels, and which QDQ pairs ORT fuses, do not
change with them.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

PRECISIONS = ("fp32", "int8")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
           "DynamicQuantizeLinear")
RANDOM_CALIBRATION = 8  # random inputs per block or network: MinMax needs a few; latency does not read them


@dataclass(frozen=True)
class QuantSettings:
    """How a model is quantized; part of an int8 LUT's settings (``settings["quantization"]``)."""

    activations: str          # "uint8" | "int8"
    weights: str              # "int8"
    per_channel: bool
    reduce_range: bool        # 7-bit weights: no saturation of u8 x s8 products in AVX2's VPMADDUBSW
    format: str = "QDQ static"
    calibration_method: str = "MinMax"
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QuantSettings":
        return cls(**{k: d[k] for k in ("activations", "weights", "per_channel", "reduce_range", "format",
                                        "calibration_method", "why") if k in d})


def choose_settings(machine: str | None, cpu_flags: str | None) -> QuantSettings:
    """The types that suit the device, as ``onnxruntime.quantization.quantize_static``'s own guidance for CPUs
    says: x86, uint8 activations and int8 weights, ``reduce_range`` (7-bit weights) unless the CPU has VNNI
    (without it, 8-bit products can saturate); on this AVX2 host a MobileNet block ran 695 us u8/s8 against
    1032 us s8/s8 (/work/shared/MEASUREMENT.md). Arm and others: symmetric int8 activations and weights, which
    Arm's kernels prefer. Weights per channel always: finalize's accuracy needs it on depthwise convolutions,
    at a small cost in speed, and the LUT must price what ships."""
    m = (machine or "").lower()
    flags = (cpu_flags or "").lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
        return QuantSettings("uint8", "int8", True, not vnni,
                             why=f"x86 {'with' if vnni else 'without'} VNNI: u8 activations x s8 weights"
                                 + ("" if vnni else ", reduce_range (no VPMADDUBSW saturation)"))
    return QuantSettings("int8", "int8", True, False, why=f"{machine or 'unknown machine'}: s8s8, ORT's QDQ default")


def random_batches(input_shape: Sequence[int], n: int = RANDOM_CALIBRATION, seed: int = 0) -> list[np.ndarray]:
    """``n`` seeded standard-normal inputs: calibration data for a block or a network whose data hwnas lacks."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(n)]


def quantize_qdq(model: bytes | str | Path, batches: Iterable[np.ndarray], qs: QuantSettings,
                 input_name: str = "input") -> bytes:
    """The QDQ int8 model of an fp32 ONNX model (bytes or file), calibrated (MinMax) on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    feed = list(batches)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feed)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="hwnas-q-") as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model if isinstance(model, bytes) else Path(model).read_bytes())
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=types[qs.activations], weight_type=types[qs.weights],
                        per_channel=qs.per_channel, reduce_range=qs.reduce_range,
                        calibrate_method=getattr(CalibrationMethod, qs.calibration_method))
        return out.read_bytes()


def model_precision(model: bytes | str | Path) -> str:
    """``int8`` when the model holds quantized operators (QDQ pairs, QLinear*, *Integer), else ``fp32``.

    Works on ONNX and ORT-format files alike: both store each node's operator type as a plain string."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    return "int8" if any(op.encode() in data for op in QDQ_OPS) else "fp32"
