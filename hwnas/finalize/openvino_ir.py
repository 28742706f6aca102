"""The OpenVINO IR beside the ONNX (``model.xml``/``model.bin``) when the device runs OpenVINO, and its parity.

Made from the bundle's ``model.onnx`` (OpenVINO's ONNX reader, as the openvino-cpu profiler reads the LUT's
blocks) and saved with f32 weights: ``openvino.save_model`` by default stores them as f16, which is neither what the
LUT priced nor what the parity check compares.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.finalize.onnx_export import PARITY_ATOL, check_outputs


def export_ir(onnx_path: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """``out/model.xml`` and ``model.bin`` from ``onnx_path``; (the XML's path, what the report says of it)."""
    import openvino as ov

    xml = out / "model.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml, {"xml": xml.name, "bin": xml.with_suffix(".bin").name, "from": onnx_path.name,
                 "openvino": ov.__version__, "weights": "f32 (compress_to_fp16=False)",
                 "bytes": xml.stat().st_size + xml.with_suffix(".bin").stat().st_size}


def ir_predict(xml: Path, x: torch.Tensor) -> np.ndarray:
    """The IR's outputs for each image of ``x`` (batch 1 at a time, as exported), on OpenVINO's CPU plugin."""
    from hwnas_agent import openvino_runtime as ovr

    compiled = ovr.compile_model(ovr.read_ir_files(xml), 1)
    out = compiled.outputs[0]
    feed = (lambda i: [x[i:i + 1].numpy()]) if compiled.inputs else (lambda i: [])
    return np.concatenate([compiled(feed(i))[out] for i in range(len(x))])


def check_ir_parity(model: nn.Module, xml: Path, x: torch.Tensor, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """OpenVINO (the IR) vs PyTorch on real images: the rule the ONNX model is held to."""
    return check_outputs(model, ir_predict(xml, x), x, atol, "OpenVINO IR")
