"""``hwnas measure``'s work: a model file and archs measured as the LUT was built, each beside the LUT's
prediction, its error and that error corrected for the device's drift (the arithmetic finalize's verdict
uses too: :func:`hwnas.core.metrics.error_pct`, :meth:`hwnas.measuring.drift.Drift.corrected_error_pct`)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.core.metrics import error_pct
from hwnas.latency.lut import LUT
from hwnas.measuring.drift import Drift
from hwnas.measuring.modelfile import ModelFileError
from hwnas.profilers import Measurement


@dataclass(frozen=True)
class MeasuredItem:
    """One thing measured (a model file's path or an arch id), and the LUT's prediction of it when there is one."""

    what: str
    profiler: str
    measurement: Measurement
    predicted_ms: float | None = None
    error_pct: float | None = None
    drift_corrected_error_pct: float | None = None
    provenance: str | None = None   # "transferred from ..." when the LUT is a transfer

    def to_dict(self) -> dict[str, Any]:
        row = {"what": self.what, "profiler": self.profiler, **self.measurement.to_dict()}
        if self.predicted_ms is not None:
            row.update(predicted_ms=round(self.predicted_ms, 4), error_pct=round(self.error_pct, 2))
            if self.drift_corrected_error_pct is not None:
                row["drift_corrected_error_pct"] = round(self.drift_corrected_error_pct, 2)
        return row

    def line(self) -> str:
        m = self.measurement
        line = (f"{self.what}: measured median {m.median_ms:.3f} ms (p10 {m.p10_ms:.3f}, p90 {m.p90_ms:.3f}, "
                f"CV {m.cv * 100:.1f} %, n={m.n}) with {self.profiler}")
        if self.predicted_ms is not None:
            line += (f"; predicted {self.predicted_ms:.3f} ms{f' ({self.provenance})' if self.provenance else ''} "
                     f"({self.error_pct:+.1f} %")
            if self.drift_corrected_error_pct is not None:
                line += f", {round(self.drift_corrected_error_pct, 2):+.1f} % corrected for drift"
            line += ")"
        return line


@dataclass(frozen=True)
class MeasureResult:
    """Everything one ``measure`` call measured, the device's fingerprint and the drift it found."""

    items: list[MeasuredItem]
    fingerprint: dict[str, Any]
    drift: Drift | None = None
    notes: list[str] = field(default_factory=list)  # the drift line and any warning, as said while measuring

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "drift": self.drift.to_dict() if self.drift else None,
                "results": [i.to_dict() for i in self.items]}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def check_model_path(path: Path) -> None:
    """A model file to measure must be a file (said of the user's path, before any work)."""
    from hwnas.core.jsonio import path_problem

    problem = path_problem(path, "a model file", "an .onnx, .ort, .xml (OpenVINO IR) or .tflite file")
    if problem:
        raise ModelFileError(problem)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")


def measure_targets(profiler_name: str, options: dict[str, Any], *, lut: LUT | None = None, space: Any = None,
                    model: str | Path | None = None, archs: Sequence[Any] = (), processes: int = 2,
                    drift_check: bool = True, precision: str | None = None,
                    log: Callable[[str], None] = _stderr) -> MeasureResult:
    """Measure ``model`` (an ONNX/ORT file, in this process) and ``archs`` (end to end, in ``processes`` fresh
    processes) with ``profiler_name`` and ``options``; with a ``lut``, each arch beside the LUT's prediction,
    and, unless ``drift_check`` is off, the LUT's drift reference re-measured first so the error can be
    corrected for the device's change of speed. ``precision``: what the user said the model file is (without a
    LUT). ``log`` gets the foreign-device warning and the drift line while measuring."""
    from hwnas.measuring.measure import arch_measurer, available_profiler, warn_if_foreign
    from hwnas.profilers._common import file_kinds, takes_file

    profiler = available_profiler(profiler_name, options)
    notes: list[str] = []

    def say(line: str) -> None:
        notes.append(line)
        log(line)

    if lut is not None:
        import io

        buf = io.StringIO()
        warn_if_foreign(lut, profiler, stream=buf)
        if buf.getvalue():
            say(buf.getvalue().rstrip("\n"))
    items: list[MeasuredItem] = []
    if model is not None:
        path = Path(model)
        check_model_path(path)
        if not file_kinds(profiler):
            raise ModelFileError(f"profiler {profiler_name!r} times torch modules, not ONNX files; use ort-cpu or "
                                 f"ort-mobile")
        if not takes_file(profiler, path):
            raise ModelFileError(f"profiler {profiler_name!r} times {' and '.join(file_kinds(profiler))} files, not "
                                 f"{path.name}; give one of those, or a profiler that runs it (hwnas profile --list)")
        from hwnas.measuring.modelfile import check_model_file
        from hwnas.measuring.precision import check_file_for_lut, check_same, model_precision

        check_model_file(path)  # not ONNX, truncated, two inputs, a dynamic shape

        if lut is not None:  # an fp32 file against an int8 prediction (or back) is refused, not reported
            check_file_for_lut(path, lut)
        elif precision is not None:
            check_same(f"model {path.name}", model_precision(path), "--precision", precision,
                       "drop --precision (a file is timed as it is), or give the model of that precision")
        items.append(MeasuredItem(str(path), profiler_name, profiler.measure_onnx(path)))
    predictor = None
    if lut is not None:
        from hwnas.latency.predict import latency_predictor

        predictor = latency_predictor(lut, space)
    drift = None
    if predictor is not None and archs and drift_check:
        from hwnas.measuring.drift import NO_REFERENCE, check_drift

        drift = check_drift(lut, options)
        say(f"drift: {drift.describe()}" if drift else NO_REFERENCE)
        if drift and drift.warning():
            say(drift.warning())
    measured = arch_measurer(profiler_name, options, processes)(list(archs))
    provenance = (lut.provenance or None) if lut is not None else None
    for arch, m in zip(archs, measured):
        if predictor is None:
            items.append(MeasuredItem(arch.id, profiler_name, m))
            continue
        pred = predictor.predict(arch)
        items.append(MeasuredItem(arch.id, profiler_name, m, pred, error_pct(pred, m.median_ms),
                                  drift.corrected_error_pct(pred, m.median_ms) if drift is not None else None,
                                  provenance))
    return MeasureResult(items, profiler.fingerprint(), drift, notes)
