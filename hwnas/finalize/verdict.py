"""The measured latency of what finalize made, with the LUT's settings, and the verdict against the budget."""
from __future__ import annotations

import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwnas.core.metrics import error_pct
from hwnas.finalize.result import below_budget_line
from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.measuring.profiling import retry_while_noisy
from hwnas.spaces.base import SpaceArch
from hwnas.profilers import capability, get_profiler_class


def latency_verdict(lut: LUT, profiler_name: str, arch: SpaceArch, model: nn.Module, onnx_path: Path, ort_path: Path,
                    out: Path, budget: float | None, processes: int,
                    log: Any, margin: float | None = None, max_cv: float | None = None,
                    ir_path: Path | None = None) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Measure what the device runs (the ``.ort`` file for a profiler that ``measures_ort_format``, the OpenVINO IR
    ``ir_path`` for one that ``measures_openvino_ir``, else the ONNX file or, for one that does not measure ONNX
    files, the module) and judge the raw median against the budget:
    a measurement too noisy to decide (``decide``) is repeated once, and UNCERTAIN when still so. ``margin``: the
    safety margin the search kept below the budget (reported with how far below the budget the pick is);
    ``max_cv``: the robust CV over which a measurement is too noisy [NOISY_ROBUST_CV].

    Returns (the report's latency section, the measurement, this device's fingerprint); paths in the report
    name ``out``, where the bundle will be."""
    predicted = latency_predictor(lut, arch.space).predict(arch) if profiler_name == lut.profiler else None
    cls = get_profiler_class(profiler_name)
    measured_on = (ort_path if capability(cls, "measures_ort_format") else
                   ir_path if ir_path is not None and capability(cls, "measures_openvino_ir") else onnx_path)
    if capability(get_profiler_class(profiler_name), "measures_onnx_files"):  # the file timed is the LUT's precision
        from hwnas.measuring.precision import check_same, model_precision

        check_same(f"the model to measure ({measured_on.name})", model_precision(measured_on),
                   f"the LUT {lut.path}", lut.precision, "this is a bug in finalize: please report it")
    log(f"measuring {measured_on.name} with {profiler_name} ({max(processes, 1)} process(es)) ...")
    m, what, diff, fingerprint_here = measure_artifact(lut, profiler_name, measured_on, model, arch, processes,
                                                       shown_as=out / measured_on.name)
    limit = NOISY_ROBUST_CV if max_cv is None else max_cv
    decision = decide(m, budget, limit)
    first = None
    if decision.verdict == UNCERTAIN:  # too noisy for this budget: once more, then say so rather than guess
        log(f"the measurement cannot decide against the budget {budget:g} ms ({'; '.join(decision.spread)}); "
            f"measuring once more ...")
        first = m
        m, *_ = measure_artifact(lut, profiler_name, measured_on, model, arch, processes,
                                 shown_as=out / measured_on.name, warn=False)
        decision = decide(m, budget, limit)
        if decision.verdict == UNCERTAIN:
            log(f"still noisy ({'; '.join(decision.spread)}): the verdict is UNCERTAIN")
    latency = {"profiler": profiler_name, "precision": lut.precision, "measured_file": what, "measured": m.to_dict(),
               "predicted_ms": predicted, "budget_ms": budget, "verdict": decision.verdict,
               "prediction_error_pct": None if predicted is None else error_pct(predicted, m.median_ms),
               "gap_ms": None if budget is None else m.median_ms - budget, "fingerprint_diff": diff,
               **decision.to_dict(first),
               **headroom(budget, predicted, m.median_ms, margin, log),
               **drift_of_prediction(lut, predicted, m.median_ms, processes, log)}
    return latency, m, fingerprint_here


UNCERTAIN = "UNCERTAIN"
# A measurement decides a verdict when its spread is small and the budget lies outside it. Robust CV (1.4826 MAD /
# median) over 10 %: the body of the samples is noisy (a quiet CPU gives 1-3 %); CV (std / mean) over 25 %: a heavy
# tail of slow calls (seen: CV 163.9 % with p10-p90 0.071-0.094 ms, judged PASS without a word).
NOISY_ROBUST_CV = 0.10
NOISY_CV = 0.25
# The verdict is on the median, so it is undecided when the budget lies within the median's own uncertainty: its
# 95 % interval from the samples (1.96 x 1.2533 x robust sigma / sqrt(n)), never narrower than the tolerance within
# which two fresh processes' medians count as agreeing (hwnas.measuring.stability.AGREE, 5 %): a process reads the
# same file up to that much faster or slower. Not the calls' p10-p90: single calls of a 0.1 ms network spread
# +-20 % on a quiet CPU while their median is known to a few per cent, and every pick near its budget was UNCERTAIN.
MEDIAN_Z = 1.96 * 1.2533


@dataclass(frozen=True)
class Decision:
    """A verdict and, when the measurement could not give one, why (``spread``) and what to do (``advice``)."""

    verdict: str                    # PASS, FAIL, UNCERTAIN or NO BUDGET
    spread: tuple[str, ...] = ()    # what made it undecided (empty for PASS/FAIL/NO BUDGET)

    @property
    def advice(self) -> str | None:
        if self.verdict != UNCERTAIN:
            return None
        return ("measure on an idle device (stop other work, pin the process), then run finalize again with --force; "
                "or search again with a safety margin (hwnas search --margin 5%) so the pick lies clear of the budget")

    def to_dict(self, first: Any = None) -> dict[str, Any]:
        """The report's fields: the spread and advice when UNCERTAIN, the first measurement when it was repeated."""
        return {"uncertain": None if self.verdict != UNCERTAIN else {"spread": list(self.spread),
                                                                      "advice": self.advice},
                "first_measurement": None if first is None else first.to_dict()}


def median_band(m: Any) -> tuple[float, float]:
    """The interval the measured median is known to (ms): see MEDIAN_Z and AGREE above."""
    from hwnas.measuring.stability import AGREE

    half = max(MEDIAN_Z * m.robust_cv * m.median_ms / math.sqrt(max(int(m.n), 1)), AGREE * m.median_ms)
    return m.median_ms - half, m.median_ms + half


def decide(m: Any, budget_ms: float | None, robust_cv_limit: float = NOISY_ROBUST_CV,
           cv_limit: float = NOISY_CV) -> Decision:
    """PASS (median within the budget), FAIL, or UNCERTAIN when the measurement ``m`` (median_ms, n, cv, robust_cv)
    cannot tell: its spread is wide (robust CV or CV over its limit) or the budget lies within the median's own
    uncertainty (:func:`median_band`). The median is judged raw, never corrected."""
    if budget_ms is None:
        return Decision("NO BUDGET")
    spread = []
    if m.robust_cv > robust_cv_limit:
        spread.append(f"robust CV {m.robust_cv * 100:.1f} % over {robust_cv_limit * 100:g} %")
    if m.cv > cv_limit:
        spread.append(f"CV {m.cv * 100:.1f} % over {cv_limit * 100:g} %")
    low, high = median_band(m)
    if low <= budget_ms <= high:
        spread.append(f"the budget {budget_ms:g} ms lies within the median's uncertainty {low:.3f}-{high:.3f} ms "
                      f"(+-{(high - m.median_ms) / m.median_ms * 100:.1f} %)")
    if spread:
        return Decision(UNCERTAIN, tuple(spread))
    return Decision("PASS" if m.median_ms <= budget_ms else "FAIL")


def headroom(budget_ms: float | None, predicted_ms: float | None, measured_ms: float, margin: float | None,
             log: Any) -> dict[str, Any]:
    """How far below the budget the pick is, predicted and measured (negative: over it), and the safety margin the
    search kept (``hwnas search --margin``); logged in one line."""
    if budget_ms is None:
        return {"below_budget": None}
    below = {"margin": margin, "measured_ms": budget_ms - measured_ms,
             "measured_pct": (budget_ms - measured_ms) / budget_ms * 100,
             "predicted_ms": None if predicted_ms is None else budget_ms - predicted_ms,
             "predicted_pct": None if predicted_ms is None else (budget_ms - predicted_ms) / budget_ms * 100}
    log(below_budget_line(budget_ms, below))
    return {"below_budget": below}


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
