"""The model as ONNX (opset 17, fixed shape, checked, shapes inferred) and its parity with PyTorch."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import CheckFailed
from hwnas.evaluate.data import Splits
from hwnas.spaces.base import SpaceArch

OPSET = 17
PARITY_ATOL = 1e-4


class ParityError(CheckFailed):
    """The exported ONNX model does not compute what the PyTorch model computes."""

    code = 1  # a check failed (CLI exit code)


def export(model: nn.Module, arch: SpaceArch, path: Path) -> dict[str, Any]:
    import onnx

    shape = (1, arch.space.in_channels, arch.resolution, arch.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.zeros(*shape),), str(raw), opset_version=OPSET, dynamo=False,
                              input_names=["input"], output_names=["logits"])
        proto = onnx.load(str(raw))
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.save(inferred, str(path))
    out_dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    return {"opset": OPSET, "input": {"name": "input", "shape": list(shape)},
            "output": {"name": "logits", "shape": out_dims}, "checker": "onnx.checker full_check passed",
            "bytes": path.stat().st_size}


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_predict(sess, x: torch.Tensor) -> np.ndarray:
    inputs = sess.get_inputs()  # none when the output ignores the input (a cell network with no path)
    feed = (lambda i: {inputs[0].name: x[i:i + 1].numpy()}) if inputs else (lambda i: {})
    return np.concatenate([sess.run(None, feed(i))[0] for i in range(len(x))])


def check_parity(model: nn.Module, onnx_path: Path, x: torch.Tensor, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch on real images: max |diff| <= atol and the same top-1 for every image."""
    return check_outputs(model, ort_predict(ort_session(onnx_path), x), x, atol, "ONNX")


def check_outputs(model: nn.Module, got: np.ndarray, x: torch.Tensor, atol: float, what: str) -> dict[str, Any]:
    """The parity rule for any exported model (``what``: ONNX, OpenVINO IR): its outputs ``got`` on ``x`` against
    PyTorch's, max |diff| <= atol and the same top-1 for every image; ParityError otherwise."""
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    diff = float(np.abs(ref - got).max())
    same_top1 = int((ref.argmax(1) == got.argmax(1)).sum())
    result = {"images": len(x), "max_abs_diff": diff, "tolerance": atol, "top1_agree": same_top1}
    if diff > atol or same_top1 != len(x):
        raise ParityError(f"{what} output differs from PyTorch on {len(x)} validation images: max |diff| {diff:.3g} "
                          f"(tolerance {atol:g}), top-1 agrees on {same_top1}/{len(x)}. The export is wrong; "
                          f"nothing was written as a final model")
    return result


def onnx_accuracy(path: Path, splits: Splits, part: str, arch: SpaceArch) -> float:
    x, y = splits.tensors(part, arch.resolution, arch.space.in_channels)
    pred = ort_predict(ort_session(path), x).argmax(1)
    return 100.0 * float((pred == y.numpy()).mean())
