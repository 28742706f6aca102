"""Compile and time a model with OpenVINO's CPU plugin: the settings of hwnas's openvino-cpu profiler, host and device.

Only numpy and openvino (optional on a device: :func:`version` says whether it is there). The model is an ONNX file
(OpenVINO reads ONNX itself) or an OpenVINO IR, which travels as one file: :func:`pack_ir` puts ``model.xml`` and
``model.bin`` behind a magic so the agent's store, digests and bundles keep one file per model.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Optional

import numpy as np

IR_MAGIC = b"HWNASIR1"  # then the XML's length (8 bytes, little-endian), the XML, the weights
DEVICE = "CPU"
# The precision is fixed to f32: left alone, the CPU plugin runs bfloat16 on a CPU with AVX-512 BF16 or AMX (seen
# on this project's AMD EPYC host), which is neither what the fp32 LUT prices nor what PyTorch computes.
PRECISION = "f32"


def version() -> Optional[str]:
    """OpenVINO's version, None when it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__)


def device_facts() -> dict[str, Any]:
    """What OpenVINO sees of the CPU (its name and the capabilities that choose kernels), for the fingerprint."""
    import openvino as ov

    core = ov.Core()
    return {"openvino": version(), "openvino_device": core.get_property(DEVICE, "FULL_DEVICE_NAME"),
            "openvino_capabilities": " ".join(core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))}


def config(threads: int) -> dict[str, Any]:
    """The compile settings, in OpenVINO's own terms (what benchmark_app -hint latency -nthreads N sets)."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": PRECISION}


def pack_ir(xml: bytes, weights: bytes) -> bytes:
    """One file of an IR's two: the magic, the XML's length, the XML, the weights."""
    return IR_MAGIC + struct.pack("<Q", len(xml)) + xml + weights


def is_packed_ir(data: bytes) -> bool:
    return data[:len(IR_MAGIC)] == IR_MAGIC


def read_ir_files(xml_path: "str | Path") -> bytes:
    """An IR on disk (``model.xml`` beside ``model.bin``) packed into one file."""
    xml_path = Path(xml_path)
    return pack_ir(xml_path.read_bytes(), xml_path.with_suffix(".bin").read_bytes())


def read_model(data: bytes):
    """An ``ov.Model`` from the bytes of an ONNX file or of a packed IR."""
    import openvino as ov

    core = ov.Core()
    if not is_packed_ir(data):
        return core.read_model(data)
    start = len(IR_MAGIC) + 8
    (n,) = struct.unpack("<Q", data[len(IR_MAGIC):start])
    if start + n > len(data):
        raise ValueError("a truncated OpenVINO IR file (its XML is cut short)")
    weights = np.frombuffer(data[start + n:], dtype=np.uint8).copy()
    return core.read_model(data[start:start + n].decode(), ov.Tensor(weights))


def compile_model(data: bytes, threads: int):
    """The model compiled for the CPU plugin with :func:`config`; refused when its input shape is not fixed."""
    import openvino as ov

    model = read_model(data)
    if len(model.inputs) > 1:
        raise ValueError(f"the model has {len(model.inputs)} inputs; hwnas times single-input models")
    if model.inputs and model.inputs[0].get_partial_shape().is_dynamic:
        raise ValueError(f"model input has a dynamic shape {model.inputs[0].get_partial_shape()}; export it with a "
                         f"fixed shape")
    return ov.Core().compile_model(model, DEVICE, config(threads))


def runner(compiled) -> Any:
    """A no-argument callable running one inference on a fixed random input (seeded as the ORT timing is)."""
    request = compiled.create_infer_request()
    if compiled.inputs:  # a graph whose output ignores its input has none
        shape = tuple(compiled.inputs[0].get_shape())
        request.set_input_tensor(0, _tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
    return request.infer


def _tensor(x: np.ndarray):
    import openvino as ov

    return ov.Tensor(x)


def applied(compiled) -> dict[str, Any]:
    """The settings the compiled model runs with, read back from it (not what was asked: what OpenVINO did)."""
    keys = ("PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "NUM_STREAMS",
            "ENABLE_CPU_PINNING")
    return {k: str(compiled.get_property(k)) for k in keys}
