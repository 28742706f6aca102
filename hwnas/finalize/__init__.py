"""Finalize a search: the chosen arch as ONNX that is checked, proven equal to PyTorch, and measured.

``finalize(run_dir, out)``: inherited supernet weights (optionally fine-tuned) ->
test accuracy -> ONNX (opset 17, fixed shape, checker with full_check, shape
inference) -> parity with PyTorch on real validation images -> ORT-format model
-> optional static int8 (QDQ) -> latency MEASURED with the LUT's own profiler and
settings -> a PASS/FAIL verdict against the budget, and the bundle on disk. With an int8 LUT (a search priced in
int8) the int8 model, quantized as the LUT records and checked against fp32 on the test split, is the one
measured and judged (docs/int8.md).

One job per module:

- :mod:`~hwnas.finalize.source`: what to finalize (the picked record, the run's LUT, the arch's weights);
- :mod:`~hwnas.finalize.onnx_export`: export to ONNX and parity with PyTorch;
- :mod:`~hwnas.finalize.mobile`: the mobile artefacts (``.ort``, int8);
- :mod:`~hwnas.finalize.verdict`: measuring with the LUT's settings, and the verdict against the budget;
- :mod:`~hwnas.finalize.bundle`: the bundle directory (refuse, stage, publish atomically);
- :mod:`~hwnas.finalize.pipeline`: the whole path, ``finalize()``;
- :mod:`~hwnas.finalize.result`: what it returns (:class:`FinalizeResult`, its :class:`LatencyVerdict` and the
  one verdict line the CLI and the demo print).

The names below are the public ones (``from hwnas.finalize import finalize, read_run, ...``).
"""
from hwnas.finalize.bundle import REPORT_FORMAT, check_out, is_bundle, publish, staging_dir
from hwnas.finalize.mobile import has_vnni, quantize_int8, to_ort_format
from hwnas.finalize.onnx_export import (OPSET, PARITY_ATOL, ParityError, check_parity, export, onnx_accuracy,
                                        ort_predict, ort_session)
from hwnas.finalize.pipeline import build_bundle, finalize
from hwnas.finalize.result import FinalizeResult, LatencyVerdict
from hwnas.finalize.source import FinalizeError, inherited_model, pick_record, resolve_lut
from hwnas.finalize.verdict import drift_of_prediction, latency_verdict, measure_artifact
from hwnas.search.runs import Run, read_run

__all__ = [
    "OPSET", "PARITY_ATOL", "REPORT_FORMAT", "FinalizeError", "FinalizeResult", "LatencyVerdict", "ParityError", "Run", "build_bundle", "check_out",
    "check_parity", "drift_of_prediction", "export", "finalize", "has_vnni", "inherited_model", "is_bundle",
    "latency_verdict", "measure_artifact", "onnx_accuracy", "ort_predict", "ort_session", "pick_record", "publish",
    "quantize_int8", "read_run", "resolve_lut", "staging_dir", "to_ort_format",
]
