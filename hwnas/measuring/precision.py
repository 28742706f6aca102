"""One precision per number: an int8 LUT prices int8 models, and nothing compares fp32 with int8.

A LUT's precision is ``lut.settings["precision"]`` (``LUT.precision``; absent: fp32, as every LUT before int8
LUTs). A model file's precision is read from its operators (QDQ pairs, QLinear*: ``model_precision``). Where a
prediction meets a measurement (``hwnas measure FILE --lut``, finalize's verdict, fidelity) both must be of one
precision, else the command stops with one line and exit 2: a 0.66x "speed-up" read against the wrong table
is worse than no number.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hwnas.core.errors import InputError
from hwnas.profilers._quant import PRECISIONS, model_precision

__all__ = ["PRECISIONS", "PrecisionMismatch", "check_file_for_lut", "check_same", "model_precision",
           "profiler_takes_precision"]


class PrecisionMismatch(InputError):
    """An fp32 number would be compared with an int8 one (or a LUT would mix them)."""


def check_same(a_what: str, a: str, b_what: str, b: str, fix: str) -> None:
    """Refuse when ``a`` and ``b`` (precisions of the two things named) differ; ``fix`` says what to do."""
    if a != b:
        raise PrecisionMismatch(f"{a_what} is {a} but {b_what} is {b}: an {a} number is not compared with an {b} "
                                f"one; {fix}")


def check_file_for_lut(path: str | Path, lut: Any) -> str:
    """The precision of the model file at ``path``, refused when it is not the LUT's."""
    found = model_precision(path)
    want = lut.precision
    fix = ("measure its int8 model (hwnas finalize --int8 writes model.int8.onnx), or use an fp32 LUT"
           if want == "int8" else "use an int8 LUT (hwnas profile --precision int8), or measure the fp32 model")
    check_same(f"model {Path(path).name}", found, f"the LUT {lut.path or ''}".rstrip(), want, fix)
    return found


def profiler_takes_precision(profiler_class: type) -> bool:
    """Whether a profiler can time int8 (takes a ``precision`` option): the ORT ones; torch profilers time fp32."""
    try:
        return "precision" in inspect.signature(profiler_class).parameters
    except (TypeError, ValueError):
        return False
