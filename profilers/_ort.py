"""ONNX export and ONNX Runtime sessions that never fall back silently."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.profilers.base import Measurement, ProviderFallbackError, TimingPolicy
from hwnas_agent.timing import time_maybe_paired

OPSET = 17
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def export_onnx(module: Any, input_shape: tuple[int, ...], opset: int = OPSET) -> bytes:
    """Export a torch module with a fixed input shape; input ``input``, output ``output``."""
    import torch

    module = module.eval().to("cpu")
    x = torch.zeros(*input_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, opset_version=opset, dynamo=False,
                          input_names=["input"], output_names=["output"])
    return buf.getvalue()


def session_options(threads: int, level: str = "all"):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    so.log_severity_level = 3  # our own check below reports fallbacks; ORT's warning alone is easy to miss
    return so


def make_session(model: bytes | str | Path, providers: Sequence[str], so=None, threads: int = 1):
    """Create a session and fail loudly when ORT did not take every requested provider."""
    import onnxruntime as ort

    so = so or session_options(threads)
    src = str(model) if isinstance(model, Path) else model
    sess = ort.InferenceSession(src, sess_options=so, providers=list(providers))
    actual = sess.get_providers()
    missing = [p for p in providers if p not in actual]
    if missing:
        raise ProviderFallbackError(
            f"ONNX Runtime did not use {missing}: the session runs on {actual}. "
            f"This onnxruntime build offers {ort.get_available_providers()}; install a build with "
            f"{missing[0]} (or choose a profiler for what is here) instead of timing the fallback.")
    return sess


def input_shape_of(sess) -> tuple[int, ...]:
    shape = sess.get_inputs()[0].shape
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"model input {sess.get_inputs()[0].name!r} has a dynamic shape {shape}; "
                         f"export it with a fixed shape (or fix it with "
                         f"python -m onnxruntime.tools.make_dynamic_shape_fixed)")
    return tuple(shape)


def time_session(sess, input_shape: tuple[int, ...] | None, policy: TimingPolicy, pair: Any = None) -> Measurement:
    """Time ``sess.run``; ``pair`` = (reference callable, its calm ms): in alternation with it (a slow spell of the
    device stretches both, the ratio stays), reported as the calm-device figure."""
    feed = {}
    if sess.get_inputs():  # a graph whose output ignores its input (a cell network with no path) has none
        inp = sess.get_inputs()[0]
        shape = input_shape or input_shape_of(sess)
        feed[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    return time_maybe_paired(lambda: sess.run(names, feed), policy, pair)


def session_runner(sess) -> Any:
    """A no-argument callable running ``sess`` on a fixed random input (a pairing reference)."""
    feed = {}
    if sess.get_inputs():
        inp = sess.get_inputs()[0]
        feed[inp.name] = np.random.default_rng(0).standard_normal(input_shape_of(sess)).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    return lambda: sess.run(names, feed)
