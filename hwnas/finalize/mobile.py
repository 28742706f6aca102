"""What a phone runs: the ORT-format model, and an optional static int8 (QDQ) model."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hwnas.evaluate.data import Splits
from hwnas.spaces.base import SpaceArch


def to_ort_format(onnx_path: Path, out: Path, name: str = "model.ort", target_platform: str | None = None) -> Path:
    from hwnas.profilers.ort_mobile import convert_to_ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
        made = convert_to_ort(onnx_path, Path(tmp), target_platform)
        target = out / name
        target.write_bytes(made.read_bytes())
    return target


def has_vnni() -> bool:
    from hwnas.profilers._host import cpu_flags

    return any(f in cpu_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quant_settings_for(lut: Any) -> Any:
    """How to quantize for ``lut``: an int8 LUT's own recorded settings (what the search was priced with), else
    the rule of hwnas.profilers._quant for the LUT's device (its machine and CPU flags)."""
    from hwnas.profilers._quant import QuantSettings, choose_settings

    recorded = lut.settings.get("quantization") if lut is not None else None
    if recorded:
        return QuantSettings.from_dict(recorded)
    fp = lut.fingerprint if lut is not None else {}
    if not fp.get("machine"):
        import platform

        from hwnas.profilers._host import cpu_flags

        return choose_settings(platform.machine(), cpu_flags())
    return choose_settings(fp.get("machine"), fp.get("cpu_flags"))


def quantize_int8(onnx_path: Path, out_path: Path, splits: Splits, arch: SpaceArch, n_calib: int = 128,
                  settings: Any = None) -> dict[str, Any]:
    """Static QDQ int8 calibrated on ``n_calib`` training images, with ``settings`` (a QuantSettings: an int8
    LUT's, see :func:`quant_settings_for`; default: this host's rule). The same code quantizes LUT blocks."""
    from hwnas.profilers._quant import choose_settings, quantize_qdq

    if settings is None:
        import platform

        from hwnas.profilers._host import cpu_flags

        settings = choose_settings(platform.machine(), cpu_flags())
    x, _ = splits.tensors("train", arch.resolution, arch.space.in_channels)
    calib = x[:n_calib].numpy()
    out_path.write_bytes(quantize_qdq(onnx_path, (calib[i:i + 1] for i in range(len(calib))), settings))
    return {"format": settings.format, "activations": settings.activations,
            "weights": settings.weights + (" per-channel" if settings.per_channel else " per-tensor"),
            "reduce_range": settings.reduce_range, "settings": settings.to_dict(),
            "calibration_images": len(calib), "calibration_data": f"the first {len(calib)} training images",
            "bytes": out_path.stat().st_size}


def int8_checks(q_path: Path, onnx_path: Path, splits: Splits, arch: SpaceArch) -> dict[str, Any]:
    """The int8 model against the fp32 one on the whole test split: each one's accuracy, the difference, and how
    often they give the same top-1 class (a quantization that flips many answers shows there first)."""
    import numpy as np

    from hwnas.finalize.onnx_export import ort_predict, ort_session

    x, y = splits.tensors("test", arch.resolution, arch.space.in_channels)
    fp32 = ort_predict(ort_session(onnx_path), x).argmax(1)
    int8 = ort_predict(ort_session(q_path), x).argmax(1)
    labels = y.numpy()
    acc32, acc8 = 100.0 * float((fp32 == labels).mean()), 100.0 * float((int8 == labels).mean())
    return {"test_images": len(labels), "fp32_test_accuracy": acc32, "test_accuracy": acc8,
            "accuracy_delta_pct": acc8 - acc32, "top1_agreement_pct": 100.0 * float(np.mean(fp32 == int8))}
