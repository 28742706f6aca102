"""What a model file given to ``hwnas measure`` must be: one ONNX Runtime loads, with one input of a fixed shape.

Checked on the user's file before any profiler copies or times it, so a file that is not a model, a truncated
one, one with two inputs or a dynamic input shape is named as the user's file with what to do (a profiler
timing a temporary copy named the copy)."""
from __future__ import annotations

from pathlib import Path

from hwnas.core.errors import InputError


class ModelFileError(InputError):
    """A model file that cannot be measured as it is."""


def check_model_file(path: str | Path) -> tuple[str, tuple[int, ...]] | None:
    """(input name, fixed input shape) of the ONNX/ORT model at ``path``; ModelFileError saying what is wrong if
    none. An OpenVINO IR (``.xml``) or a ``.tflite`` file is loaded by its own runtime instead (returns None)."""
    import onnxruntime as ort

    path = Path(path)
    if path.suffix.lower() in OTHER_RUNTIMES:
        OTHER_RUNTIMES[path.suffix.lower()](path)
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the reason is in the exception; ORT's own log line would repeat it
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # InvalidProtobuf, InvalidGraph, Fail: ORT's own classes, all bad files
        reason = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: not a model ONNX Runtime can load (truncated, or not ONNX: {reason}); give an "
                             f".onnx or .ort file, e.g. the model.onnx of a finalize bundle") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(f"{i.name!r}" for i in inputs)
        raise ModelFileError(f"{path} has {len(inputs)} inputs ({names}); hwnas measure times models with one "
                             f"input (a batch of images): export it with one")
    shape = inputs[0].shape
    if not all(isinstance(d, int) and d > 0 for d in shape):
        raise ModelFileError(f"{path}: input {inputs[0].name!r} has a dynamic shape {shape}; hwnas measure times a "
                             f"fixed shape: export it with fixed dimensions (e.g. 1x3x224x224)")
    return inputs[0].name, tuple(shape)


def _check_ir(path: Path) -> None:
    from hwnas_agent import openvino_runtime as ovr

    if not path.with_suffix(".bin").is_file():
        raise ModelFileError(f"{path}: an OpenVINO IR needs its weights {path.with_suffix('.bin').name} beside it")
    try:
        ovr.compile_model(ovr.read_ir_files(path), 1)
    except Exception as e:  # openvino's RuntimeError for a bad XML, ours (ValueError) for two inputs or a dynamic shape
        raise ModelFileError(f"{path}: not an OpenVINO IR hwnas can time ({_first_line(e)}); give the model.xml of a "
                             f"finalize bundle (its model.bin beside it)") from None


def _check_tflite(path: Path) -> None:
    from hwnas_agent import litert_runtime as lr

    try:
        lr.interpreter(path.read_bytes(), 1)
    except Exception as e:  # LiteRT's ValueError/RuntimeError for a bad flatbuffer, ours for two inputs
        raise ModelFileError(f"{path}: not a .tflite model LiteRT can time ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


OTHER_RUNTIMES = {".xml": _check_ir, ".tflite": _check_tflite}  # suffix -> its runtime's check; others: ORT's
