"""What a phone runs: the ORT-format model, and an optional static int8 (QDQ) model."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hwnas.evaluate.data import Splits
from hwnas.spaces.space import Arch


def to_ort_format(onnx_path: Path, out: Path) -> Path:
    from hwnas.profilers.ort_mobile import convert_to_ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
        made = convert_to_ort(onnx_path, Path(tmp))
        target = out / "model.ort"
        target.write_bytes(made.read_bytes())
    return target


def has_vnni() -> bool:
    from hwnas.profilers._host import cpu_flags

    return any(f in cpu_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_int8(onnx_path: Path, out_path: Path, splits: Splits, arch: Arch, n_calib: int = 128) -> dict[str, Any]:
    """Static QDQ int8 calibrated on training images. Without VNNI: uint8 activations, int8 weights,
    reduce_range (avoids the saturation of 8-bit products on AVX2)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x, _ = splits.tensors("train", arch.resolution, arch.space.in_channels)
    calib = x[:n_calib].numpy()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"input": batch}

    reduce_range = not has_vnni()
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=reduce_range)
    return {"format": "QDQ static", "activations": "uint8", "weights": "int8 per-channel",
            "reduce_range": reduce_range, "calibration_images": len(calib), "bytes": out_path.stat().st_size}
