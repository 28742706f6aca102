"""A real ``.tflite`` file built here without a converter: LiteRT's own flatbuffer schema (ai_edge_litert ships
it) and the flatbuffers package, for the tests of litert-cpu where litert-torch is not installed."""
from __future__ import annotations

import numpy as np


def dense_hardswish(n_in: int = 64, n_out: int = 32, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``y = hardswish(x @ W.T + b)`` for ``x`` of shape (1, n_in), float32: (the .tflite bytes, W, b)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)

    def buffer(data: np.ndarray | None):
        buf = s.BufferT()
        buf.data = None if data is None else np.frombuffer(data.tobytes(), dtype=np.uint8)
        return buf

    def tensor(name: str, shape: list[int], buf: int):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.FLOAT32, buf
        return t

    def opcode(op: int):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, min(op, 127), 1
        return c

    fc = s.OperatorT()
    fc.opcodeIndex, fc.inputs, fc.outputs = 0, [0, 1, 2], [3]
    fc.builtinOptionsType, fc.builtinOptions = s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT()
    hs = s.OperatorT()
    hs.opcodeIndex, hs.inputs, hs.outputs = 1, [3], [4]
    graph = s.SubGraphT()
    graph.tensors = [tensor("input", [1, n_in], 0), tensor("weights", [n_out, n_in], 1), tensor("bias", [n_out], 2),
                     tensor("dense", [1, n_out], 0), tensor("output", [1, n_out], 0)]
    graph.inputs, graph.outputs, graph.operators, graph.name = [0], [4], [fc, hs], "main"
    model = s.ModelT()
    model.version, model.description = 3, "hwnas test: dense + hard-swish"
    model.operatorCodes = [opcode(s.BuiltinOperator.FULLY_CONNECTED), opcode(s.BuiltinOperator.HARD_SWISH)]
    model.subgraphs, model.buffers = [graph], [buffer(None), buffer(w), buffer(b)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), w, b


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What the model computes, in numpy (hard-swish: x * relu6(x + 3) / 6)."""
    y = x @ w.T + b
    return y * np.clip(y + 3, 0, 6) / 6
