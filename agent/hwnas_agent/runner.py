"""Time one model file: with ONNX Runtime (the session settings hwnas's ORT profilers use, no silent fallback),
OpenVINO (``format`` "openvino": hwnas_agent.openvino_runtime) or LiteRT ("tflite": hwnas_agent.litert_runtime)."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from hwnas_agent.timing import Measurement, TimingPolicy, time_maybe_paired

LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


class FallbackError(RuntimeError):
    """ONNX Runtime took other execution providers than were asked for (by itself it only warns)."""


def read_checked(path: "str | Path", sha256: str) -> bytes:
    """The bytes of the model file at ``path``, opened without following a symbolic link, only when it is a regular
    file whose bytes have the digest ``sha256`` (the agent's store names files by it)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{Path(path).name} is not a regular file; not a model this agent stored")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{Path(path).name} no longer holds the model {sha256[:12]} (changed on the device); "
                         f"send it again")
    return data


def session(path: "str | Path", settings: dict[str, Any], sha256: Optional[str] = None):
    """An InferenceSession for ``path`` with ``settings``: threads, opt_level, format ("onnx"/"ort"), providers.
    ``sha256``: load the checked bytes (:func:`read_checked`), not the path."""
    import onnxruntime as ort

    threads = int(settings.get("threads", 1))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if settings.get("format", "onnx") == "ort":
        so.add_session_config_entry("session.load_model_format", "ORT")
    else:
        level = settings.get("opt_level", "all")
        if level not in LEVELS:
            raise ValueError(f"opt_level must be one of {sorted(LEVELS)}, got {level!r}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    providers: Sequence[str] = settings.get("providers") or ["CPUExecutionProvider"]
    model = read_checked(path, sha256) if sha256 is not None else str(path)
    sess = ort.InferenceSession(model, sess_options=so, providers=list(providers))
    missing = [p for p in providers if p not in sess.get_providers()]
    if missing:
        raise FallbackError(f"ONNX Runtime on this device did not use {missing} (it runs on {sess.get_providers()}; "
                            f"this build offers {ort.get_available_providers()})")
    return sess


def feed_for(sess) -> dict[str, Any]:
    inputs = sess.get_inputs()
    if not inputs:  # a graph whose output ignores its input (a cell network with no path) has none
        return {}
    if len(inputs) > 1:
        raise ValueError(f"the model has {len(inputs)} inputs; hwnas times single-input models")
    shape = inputs[0].shape
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"model input {inputs[0].name!r} has a dynamic shape {shape}; export it with a fixed shape")
    return {inputs[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}


def _pair(settings: dict[str, Any]) -> Any:
    """(reference callable, calm ms) when the request pairs with a reference model (``settings["pair"]``)."""
    pair = settings.get("pair")
    if not pair:
        return None
    calm = float(pair["calm_ms"])
    if not calm > 0:
        raise ValueError("pair.calm_ms must be > 0")
    ref = session(pair["path"], {"threads": settings.get("threads", 1), "opt_level": "all", "format": "onnx"},
                  pair.get("sha256"))
    ref_feed = feed_for(ref)
    ref_names = [o.name for o in ref.get_outputs()]
    return (lambda: ref.run(ref_names, ref_feed)), calm


MAX_TIME_S = 60.0  # no request may keep the device timing one model longer than this


def policy_of(value: Any) -> TimingPolicy:
    """The timing policy a request asks for, its times capped at :data:`MAX_TIME_S`."""
    p = TimingPolicy.of(value if isinstance(value, dict) else None)
    cap = {k: min(float(getattr(p, k)), MAX_TIME_S) for k in ("warmup_s", "min_time_s", "max_time_s")}
    return TimingPolicy.of({**{f: getattr(p, f) for f in p.__dataclass_fields__}, **cap})


def time_model(path: "str | Path", settings: dict[str, Any],
               sha256: Optional[str] = None) -> tuple[Measurement, list[str]]:
    """Time the model at ``path`` (with ``sha256``: only a regular file with those bytes); returns the measurement
    and the providers (the runtime and its kernels) that ran it."""
    fmt = settings.get("format", "onnx")
    if fmt in OTHER_RUNTIMES:
        if settings.get("pair"):
            raise ValueError(f"paired measurements are timed with ONNX Runtime only, not format {fmt!r}")
        data = read_checked(path, sha256) if sha256 is not None else Path(path).read_bytes()
        run, ran_on = OTHER_RUNTIMES[fmt](data, settings)
        return time_maybe_paired(run, policy_of(settings.get("policy")), None), ran_on
    sess = session(path, settings, sha256)
    feed = feed_for(sess)
    names = [o.name for o in sess.get_outputs()]
    m = time_maybe_paired(lambda: sess.run(names, feed), policy_of(settings.get("policy")), _pair(settings))
    return m, list(sess.get_providers())


def _openvino(data: bytes, settings: dict[str, Any]) -> tuple[Any, list[str]]:
    from hwnas_agent import openvino_runtime as ovr

    if ovr.version() is None:
        raise ValueError("openvino is not installed on this device: pip install openvino")
    return ovr.runner(ovr.compile_model(data, int(settings.get("threads", 1)))), [f"OpenVINO {ovr.DEVICE}"]


def _litert(data: bytes, settings: dict[str, Any]) -> tuple[Any, list[str]]:
    from hwnas_agent import litert_runtime as lr

    if lr.version() is None:
        raise ValueError("ai-edge-litert is not installed on this device: pip install ai-edge-litert")
    xnnpack = bool(settings.get("xnnpack", True))
    it = lr.interpreter(data, int(settings.get("threads", 1)), xnnpack)
    return lr.runner(it), ["LiteRT XNNPACK" if xnnpack else "LiteRT built-in kernels"]


OTHER_RUNTIMES = {"openvino": _openvino, "tflite": _litert}  # format -> (runner, what ran it); others are ORT's
