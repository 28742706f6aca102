"""The measured latency of what finalize made, with the LUT's settings, and the verdict against the budget."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwnas.core.metrics import error_pct
from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.measuring.profiling import retry_while_noisy
from hwnas.spaces.base import SpaceArch
from hwnas.profilers import capability, get_profiler_class


def latency_verdict(lut: LUT, profiler_name: str, arch: SpaceArch, model: nn.Module, onnx_path: Path, ort_path: Path,
                    out: Path, budget: float | None, processes: int,
                    log: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Measure what the device runs (the ``.ort`` file for a profiler that ``measures_ort_format``, else the
    ONNX file or, for one that does not measure files, the module) and judge the raw median against the budget.

    Returns (the report's latency section, the measurement, this device's fingerprint); paths in the report
    name ``out``, where the bundle will be."""
    predicted = latency_predictor(lut, arch.space).predict(arch) if profiler_name == lut.profiler else None
    measured_on = ort_path if capability(get_profiler_class(profiler_name), "measures_ort_format") else onnx_path
    if capability(get_profiler_class(profiler_name), "measures_onnx_files"):  # the file timed is the LUT's precision
        from hwnas.measuring.precision import check_same, model_precision

        check_same(f"the model to measure ({measured_on.name})", model_precision(measured_on),
                   f"the LUT {lut.path}", lut.precision, "this is a bug in finalize: please report it")
    log(f"measuring {measured_on.name} with {profiler_name} ({max(processes, 1)} process(es)) ...")
    m, what, diff, fingerprint_here = measure_artifact(lut, profiler_name, measured_on, model, arch, processes,
                                                       shown_as=out / measured_on.name)
    verdict = "NO BUDGET" if budget is None else ("PASS" if m.median_ms <= budget else "FAIL")  # raw, never corrected
    latency = {"profiler": profiler_name, "precision": lut.precision, "measured_file": what, "measured": m.to_dict(),
               "predicted_ms": predicted, "budget_ms": budget, "verdict": verdict,
               "prediction_error_pct": None if predicted is None else error_pct(predicted, m.median_ms),
               "gap_ms": None if budget is None else m.median_ms - budget, "fingerprint_diff": diff,
               **drift_of_prediction(lut, predicted, m.median_ms, processes, log)}
    return latency, m, fingerprint_here


def measure_artifact(lut: LUT, profiler_name: str, path: Path, model: nn.Module, arch: SpaceArch,
                     processes: int, shown_as: Path | None = None,
                     warn: bool = True) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    """Measure with the LUT's settings; a profiler that measures ONNX files times the file, others the module.

    Returns (measurement, what was timed, fingerprint fields differing from the LUT's, this fingerprint);
    what was timed names ``shown_as`` (where the file will be) when given; ``warn``: say when this device
    is not the LUT's (once per finalize: the int8 measurement does not repeat it)."""
    from hwnas.measuring.isolate import measure_isolated
    from hwnas.measuring.measure import lut_profiler_options, profiler_for, warn_if_foreign

    options = lut_profiler_options(lut)
    span_s = verdict_span_s(lut.settings)
    profiler = profiler_for(lut, profiler_name)
    diff = warn_if_foreign(lut, profiler, stream=sys.stderr if warn else io.StringIO())
    if capability(profiler, "measures_onnx_files"):
        what = str(shown_as or path)
        if processes > 0:
            m = _calm(lambda n: measure_isolated(profiler_name, options, "file", [str(path)], passes=n)[0], processes,
                      span_s=span_s)
        else:
            m = profiler.measure_onnx(path)
    else:
        what = "the PyTorch module the ONNX file was exported from"
        state = path.with_name("model.pt")
        torch.save(model.state_dict(), state)
        if processes > 0:
            m = _calm(lambda n: measure_isolated(profiler_name, options, "module", [(str(state), arch.to_dict())],
                                                 space_dict=arch.space.to_dict(), passes=n)[0], processes,
                      span_s=span_s)
        else:
            m = profiler.measure(model, (1, arch.space.in_channels, arch.resolution, arch.resolution))
    return m, what, {k: list(v) for k, v in diff.items()}, profiler.fingerprint()


def drift_of_prediction(lut: LUT, predicted: float | None, measured_ms: float, processes: int,
                        log: Any) -> dict[str, Any]:
    """Re-measure the LUT's reference networks: how much of the prediction error is the device's change of speed.

    Only when the prediction is comparable (same profiler) and measuring happens in fresh processes.
    """
    from hwnas.measuring.drift import NO_REFERENCE, check_drift
    from hwnas.measuring.measure import lut_profiler_options

    if predicted is None or processes <= 0:
        return {"drift": None, "prediction_error_drift_corrected_pct": None}
    drift = check_drift(lut, lut_profiler_options(lut))
    if drift is None:
        log(NO_REFERENCE)
        return {"drift": None, "prediction_error_drift_corrected_pct": None}
    log(f"drift: {drift.describe()}")
    if drift.warning():
        log(drift.warning())
    return {"drift": drift.to_dict(), "prediction_error_drift_corrected_pct": drift.corrected_error_pct(predicted,
                                                                                                    measured_ms)}


def _calm(measure: Any, processes: int, cv_threshold: float = 0.05, retries: int = 2, span_s: float = 0.0,
          max_processes: int = 12) -> Any:
    """The LUT's rule for the verdict's number: lowest median of ``processes`` fresh processes (more while the
    two calmest disagree: hwnas.measuring.isolate), then one more process at a time while the robust CV is over
    ``cv_threshold`` (seen here: the same file 0.110 ms in one process, 0.208 ms in the next, on a shared host),
    then more until the processes span ``span_s`` seconds (at most ``max_processes``). Seen on the newcomer
    demo: its pick measured 0.134 ms against 0.078 ms predicted, both processes and the extra ones agreeing,
    and the same file ran at 0.080 ms in most 100 ms windows a minute later: a busy spell of the host can
    outlast the few seconds a pair of processes takes, but rarely a longer span."""
    start = time.perf_counter()
    best, used = retry_while_noisy(measure(processes), lambda: measure(1), cv_threshold, retries)
    used += processes - 1
    while time.perf_counter() - start < span_s and used < max_processes:
        m = measure(1)
        used += 1
        if m.median_ms < best.median_ms:
            best = m
    return best


def verdict_span_s(settings: dict[str, Any]) -> float:
    """How long the verdict's processes are spread over: 15 of the LUT's timing policy's longest measurements
    (15 s by default; 1.5 s for the quick policy of previews and tests)."""
    from hwnas.profilers.base import TimingPolicy

    return 15.0 * TimingPolicy.of(settings.get("policy")).max_time_s
