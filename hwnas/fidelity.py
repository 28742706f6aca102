"""How well predicted latency matches measured latency, against simple baselines.

Fidelity is judged on architectures the calibration never saw, measured
end-to-end with the LUT's own profiler. Baselines fitted on the calibration
set: latency proportional to MACs, and to parameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from hwnas.calibrate import sample_archs
from hwnas.lut import LUT
from hwnas.measure import arch_measurer, profiler_for, warn_if_foreign
from hwnas.metrics import kendall_tau
from hwnas.predict import LatencyPredictor, covered_resolutions
from hwnas.space import Arch


def error_stats(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = (p - m) / m
    worst = int(np.argmax(np.abs(rel)))
    return {
        "within_5_pct": float(np.mean(np.abs(rel) <= 0.05) * 100),
        "within_10_pct": float(np.mean(np.abs(rel) <= 0.10) * 100),
        "mape_pct": float(np.mean(np.abs(rel)) * 100),
        "worst_error_pct": float(rel[worst] * 100),
        "kendall_tau": kendall_tau(p, m),
    }


def proportional_fit(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares a for y ≈ a * x on relative error."""
    r = x / y
    return float(r.sum() / (r * r).sum())


def arch_cost(arch: Arch) -> tuple[float, float]:
    layers = arch.layers()
    return float(sum(d.macs for d in layers)), float(sum(d.params for d in layers))


@dataclass
class FidelityReport:
    lut: str
    profiler: str
    n: int
    seed: int
    processes: int
    methods: dict[str, dict[str, float]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    fingerprint_diff: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        head = f"{'method':28s} {'±5 %':>7s} {'±10 %':>7s} {'MAPE':>7s} {'worst':>8s} {'tau':>6s}"
        lines = [f"fidelity of {self.lut} ({self.profiler}): {self.n} archs not used in calibration, seed {self.seed}, "
                 f"each measured end-to-end in {self.processes} fresh process(es), lowest median kept",
                 head, "-" * len(head)]
        for name, s in self.methods.items():
            lines.append(f"{name:28s} {s['within_5_pct']:6.1f}% {s['within_10_pct']:6.1f}% {s['mape_pct']:6.2f}% "
                         f"{s['worst_error_pct']:+7.1f}% {s['kendall_tau']:6.3f}")
        return "\n".join(lines)


def run_fidelity(lut: LUT, n: int = 50, seed: int = 1, progress: bool = True, options: dict[str, Any] | None = None,
                 archs: Sequence[Arch] | None = None, processes: int = 2) -> FidelityReport:
    space = lut.search_space()
    predictor = LatencyPredictor(lut, space)
    raw = LatencyPredictor(lut, space, calibrated=False)
    calib = lut.calibration or {}
    seen = {r["arch_id"] for r in calib.get("data", [])}
    resolutions = covered_resolutions(lut, space) or None
    archs = list(archs) if archs is not None else sample_archs(space, n, seed, resolutions, exclude=seen, extremes=False)
    options = {"threads": lut.settings.get("threads", 1), **(options or {})}
    diff = warn_if_foreign(lut, profiler_for(lut, **options))
    bar = tqdm(desc=f"measuring {len(archs)} networks x {max(1, processes)} process(es) ({lut.profiler})", unit="net",
               total=len(archs) * max(1, processes), disable=not progress, dynamic_ncols=True)
    y = np.array([m.median_ms for m in arch_measurer(lut.profiler, options, processes, bar)(archs)])
    bar.close()
    methods = {}
    preds = predictor.predict_many(archs)
    methods[f"LUT + calibration ({predictor.calibration.model})"] = error_stats(preds, y)
    methods["LUT sum (uncalibrated)"] = error_stats(raw.predict_many(archs), y)
    costs = np.array([arch_cost(a) for a in archs])
    if calib.get("data"):
        cal_archs = [space.arch_from_dict(r["arch"]) for r in calib["data"]]
        cal_y = np.array([r["measured"]["median_ms"] for r in calib["data"]])
        cal_costs = np.array([arch_cost(a) for a in cal_archs])
        for i, name in enumerate(("MACs", "params")):
            a = proportional_fit(cal_costs[:, i], cal_y)
            methods[f"latency ∝ {name} (baseline)"] = error_stats(a * costs[:, i], y)
    rows = [{"arch_id": a.id, "resolution": a.resolution, "measured_ms": round(float(m), 5),
             "predicted_ms": round(float(p), 5), "error_pct": round(float((p - m) / m * 100), 3),
             "macs_m": round(c[0] / 1e6, 2)} for a, m, p, c in zip(archs, y, preds, costs)]
    return FidelityReport(str(lut.path), lut.profiler, len(archs), seed, processes, methods, rows,
                          {k: list(v) for k, v in diff.items()})
