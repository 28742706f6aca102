"""One precision and one batch size per number: an int8 LUT prices int8 models, a batch-32 LUT batches of 32,
and nothing compares fp32 with int8 (or fp16), nor batch 1 with batch 32.

A LUT's precision is ``lut.settings["precision"]`` (``LUT.precision``; absent: fp32, as every LUT before int8
LUTs). A model file's precision is read from its operators (QDQ pairs, QLinear*: ``model_precision``). Where a
prediction meets a measurement (``hwnas measure FILE --lut``, finalize's verdict, fidelity) both must be of one
precision, else the command stops with one line and exit 2: a 0.66x "speed-up" read against the wrong table
is worse than no number.

A LUT's batch size is ``lut.settings["batch_size"]`` (``LUT.batch_size``; absent: 1, as every LUT before the CUDA
profilers took one); only profilers with a ``batch_size`` option (torch-cuda, torch-cuda-graph) time another.
Resuming, comparing or measuring against a LUT at another batch size is refused the same way.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hwnas.core.errors import InputError
from hwnas.profilers._quant import PRECISIONS, model_precision

__all__ = ["ALL_PRECISIONS", "PRECISIONS", "BatchSizeMismatch", "PrecisionMismatch", "check_file_for_lut",
           "check_same", "check_same_batch", "model_precision", "profiler_batch_sizes", "profiler_precisions",
           "profiler_takes_precision"]

ALL_PRECISIONS = ("fp32", "fp16", "int8")  # what --precision takes; each profiler says which of them it times


class PrecisionMismatch(InputError):
    """An fp32 number would be compared with an int8 one (or a LUT would mix them)."""


def check_same(a_what: str, a: str, b_what: str, b: str, fix: str) -> None:
    """Refuse when ``a`` and ``b`` (precisions of the two things named) differ; ``fix`` says what to do."""
    if a != b:
        raise PrecisionMismatch(f"{a_what} is {a} but {b_what} is {b}: an {a} number is not compared with an {b} "
                                f"one; {fix}")


class BatchSizeMismatch(InputError):
    """A batch-1 number would be compared with a batch-32 one (or a LUT would mix them)."""


def check_same_batch(a_what: str, a: int, b_what: str, b: int, fix: str) -> None:
    """Refuse when batch sizes ``a`` and ``b`` differ (as :func:`check_same` for precisions)."""
    if int(a) != int(b):
        raise BatchSizeMismatch(f"{a_what} is at batch {a} but {b_what} is at batch {b}: a batch-{a} number is not "
                                f"compared with a batch-{b} one; {fix}")


def check_file_for_lut(path: str | Path, lut: Any) -> str:
    """The precision of the model file at ``path``, refused when it is not the LUT's."""
    found = model_precision(path)
    want = lut.precision
    fix = ("measure its int8 model (hwnas finalize --int8 writes model.int8.onnx), or use an fp32 LUT"
           if want == "int8" else "use an int8 LUT (hwnas profile --precision int8), or measure the fp32 model"
           if want == "fp32" else f"an {want} LUT prices PyTorch modules on its GPU profiler: measure the arch "
           f"(hwnas measure --lut LUT --arch ARCH.json), not a file")
    check_same(f"model {Path(path).name}", found, f"the LUT {lut.path or ''}".rstrip(), want, fix)
    return found


def _takes(profiler_class: type, option: str) -> bool:
    try:
        return option in inspect.signature(profiler_class).parameters
    except (TypeError, ValueError):
        return False


def profiler_precisions(profiler_class: type) -> tuple[str, ...]:
    """The precisions a profiler times: its ``precisions`` attribute (ort-*: fp32, int8; torch-cuda*: fp32, fp16);
    a plugin without one that takes a ``precision`` option: fp32 and int8 (the rule before fp16); else fp32."""
    declared = getattr(profiler_class, "precisions", None)
    if declared:
        return tuple(declared)
    return tuple(PRECISIONS) if _takes(profiler_class, "precision") else ("fp32",)


def profiler_takes_precision(profiler_class: type, precision: str = "int8") -> bool:
    """Whether a profiler can time ``precision`` (default int8: the ORT ones)."""
    return precision in profiler_precisions(profiler_class)


def profiler_batch_sizes(profiler_class: type) -> str:
    """'any' when the profiler takes a ``batch_size`` option (torch-cuda, torch-cuda-graph), else '1'."""
    return "any" if _takes(profiler_class, "batch_size") else "1"


def kinds_of(profiler_class: type, precisions: tuple[str, ...]) -> str:
    """'fp32 PyTorch modules' (a profiler that times modules) or 'fp32, int8 models' (one that times model files)."""
    from hwnas.profilers import capability

    what = "models" if capability(profiler_class, "measures_onnx_files") else "PyTorch modules"
    return f"{', '.join(precisions)} {what}"


def takers(option: str, value: Any = None) -> str:
    """The built-in profilers that take ``option`` (``precision`` = ``value``, or ``batch_size``), for messages."""
    from hwnas.profilers import get_profiler_class
    from hwnas.profilers.registry import BUILTIN

    names = [n for n in BUILTIN if (profiler_takes_precision(get_profiler_class(n), value) if option == "precision"
                                    else profiler_batch_sizes(get_profiler_class(n)) == "any")]
    return ", ".join(names) or "none"
