"""Load and time a ``.tflite`` model with LiteRT's Interpreter: the settings of hwnas's litert-cpu profiler, host
and device.

Only numpy and ai-edge-litert (optional on a device: :func:`version` says whether it is there). The XNNPACK
delegate is LiteRT's default CPU path; ``xnnpack=False`` runs the built-in kernels without it (what
``benchmark_model --use_xnnpack=false`` times).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

TFLITE_ID = b"TFL3"  # the flatbuffer file identifier, bytes 4-8 of every .tflite file


def version() -> Optional[str]:
    """ai-edge-litert's version, None when it is not installed."""
    try:
        import ai_edge_litert
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("ai-edge-litert")
    except PackageNotFoundError:
        return str(getattr(ai_edge_litert, "__version__", "unknown"))


def is_tflite(data: bytes) -> bool:
    return len(data) >= 8 and data[4:8] == TFLITE_ID


def interpreter(data: bytes, threads: int, xnnpack: bool = True):
    """An Interpreter for the ``.tflite`` bytes with ``threads``, tensors allocated; one float32 input of a fixed
    shape, else refused."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if not is_tflite(data):
        raise ValueError("not a .tflite model (no TFL3 flatbuffer identifier)")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=data, num_threads=int(threads), experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inputs = it.get_input_details()
    if len(inputs) > 1:
        raise ValueError(f"the model has {len(inputs)} inputs; hwnas times single-input models")
    if inputs and (inputs[0]["dtype"] != np.float32 or any(d < 1 for d in inputs[0].get("shape_signature", [1]))):
        raise ValueError(f"model input {inputs[0]['name']!r} is {np.dtype(inputs[0]['dtype']).name} "
                         f"{list(inputs[0].get('shape_signature', inputs[0]['shape']))}; hwnas times one float32 "
                         f"input of a fixed shape")
    return it


def runner(it) -> Any:
    """A no-argument callable running ``invoke`` on a fixed random input (seeded as the ORT timing is)."""
    inputs = it.get_input_details()
    if inputs:
        x = np.random.default_rng(0).standard_normal(tuple(inputs[0]["shape"])).astype(np.float32)
        it.set_tensor(inputs[0]["index"], x)
    return it.invoke
