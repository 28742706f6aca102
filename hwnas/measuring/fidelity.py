"""How well predicted latency matches measured latency, against simple baselines.

Fidelity is judged on architectures the calibration never saw, measured
end-to-end with the LUT's own profiler. Baselines fitted on the calibration
set: latency proportional to MACs, and to parameters.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from hwnas.core.progress import progress as progress_bar
from hwnas.measuring.sampling import sample_archs
from hwnas.measuring.drift import NO_REFERENCE, check_drift, combine
from hwnas.latency.lut import LUT
from hwnas.latency.quality import noise_note, noise_of
from hwnas.measuring.build_noise import host_sampler
from hwnas.measuring.calibrate import choose_model
from hwnas.measuring.host_load import BUSY_NEIGHBOUR, HostLoad
from hwnas.measuring.measure import arch_measurer, lut_profiler_options, profiler_for, warn_if_foreign
from hwnas.core.metrics import error_pct, kendall_tau
from hwnas.latency.predict import covered_resolutions, latency_predictor
from hwnas.spaces.base import SpaceArch, layer_costs


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


def low_quantile_lut(lut: LUT) -> LUT | None:
    """A copy of ``lut`` read at the 10th percentile of every measurement (blocks and calibration networks),
    its calibration refitted: what a build keeping a low quantile instead of the median would have stored.
    On a device with slow spells the low quantile is the calm speed, the median a mix (MEASUREMENT.md).
    None where the LUT lacks what that needs (no p10 stored, no calibration, a paired LUT's ratios)."""
    calib = lut.calibration or {}
    if lut.settings.get("pairing") or not calib.get("data") or not calib.get("complete"):
        return None
    if any("p10_ms" not in e for e in lut.entries.values()) or any(
            "p10_ms" not in r["measured"] for r in calib["data"]):
        return None
    low = LUT.from_dict(copy.deepcopy(lut.to_dict()), source=str(lut.path or "LUT"))
    low.path = lut.path
    for e in low.entries.values():
        e["median_ms"] = e["p10_ms"]
    space = low.search_space()
    raw = latency_predictor(low, space, calibrated=False)
    archs = [space.arch_from_dict(r["arch"]) for r in calib["data"]]
    F = np.asarray(raw.features_many(archs), float)
    y = np.array([r["measured"]["p10_ms"] for r in calib["data"]], float)
    model, coef, _ = choose_model(F, y)
    low.calibration = {**calib, "model": model, "coef": [float(c) for c in coef],
                       "data": [{**r, "features": [float(v) for v in f], "measured": {**r["measured"],
                                                                                       "median_ms": r["measured"]["p10_ms"]}}
                                for r, f in zip(calib["data"], F)]}
    return low


def arch_cost(arch: SpaceArch) -> tuple[float, float]:
    macs, params = layer_costs(arch.layers())
    return float(macs), float(params)


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
    rounds: int = 1
    repeatability: dict[str, float] | None = None   # round 2 vs round 1: the noise ceiling of this bench
    drift: dict[str, Any] | None = None             # the device's speed vs the LUT's reference (hwnas.measuring.drift)
    precision: str = "fp32"                         # the LUT's: its networks are measured at it (int8: QDQ)
    provenance: str = ""                             # "transferred from ..." for a transfer LUT
    batch_size: int = 1                              # the LUT's: its networks are measured at it (ms per batch)
    noise: dict[str, Any] | None = None              # the LUT's build's verdict on its own noise (build_noise)
    host: dict[str, Any] | None = None               # who else used the CPU while this bench measured (host_load)
    low_quantile: dict[str, Any] | None = None       # the same LUT read at its samples' 10th percentile (below)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        head = f"{'method':34s} {'±5 %':>7s} {'±10 %':>7s} {'MAPE':>7s} {'worst':>8s} {'tau':>6s}"
        batch = f"batch {self.batch_size}" if self.batch_size != 1 else ""
        notes = ", ".join(x for x in (self.precision, batch, self.provenance) if x)
        lines = [f"fidelity of {self.lut} ({self.profiler}, {notes}): {self.n} archs not used in calibration, seed {self.seed}, "
                 f"measured end-to-end in {self.rounds} round(s) of {self.processes} fresh process(es) each, "
                 f"lowest median kept", head, "-" * len(head)]
        rows = dict(self.methods)
        if self.repeatability is not None:
            rows["repeatability: round 2 vs round 1"] = self.repeatability
        if self.low_quantile is not None:
            rows[f"p10: LUT + calibration ({self.low_quantile['model']})"] = self.low_quantile["fidelity"]
            if self.low_quantile.get("repeatability") is not None:
                rows["p10: round 2 vs round 1"] = self.low_quantile["repeatability"]
        for name, s in rows.items():
            lines.append(f"{name:34s} {s['within_5_pct']:6.1f}% {s['within_10_pct']:6.1f}% {s['mape_pct']:6.2f}% "
                         f"{s['worst_error_pct']:+7.1f}% {s['kendall_tau']:6.3f}")
        if self.low_quantile is not None:
            lines.append("(p10 rows: every block, calibration network and held-out network read at its samples' "
                         "10th percentile instead of the median, the calibration refitted on them)")
        if self.repeatability is not None:
            lines.append("(the repeatability row compares two measurements of the same networks: no predictor can "
                         "be judged more precisely than it)")
        if self.host is not None:
            host = HostLoad.from_dict(self.host)
            seen = BUSY_NEIGHBOUR if host.neighbour else "no busy neighbour"
            lines.append(f"host during this bench: {seen} ({host.describe()})")
        if note := noise_note(self.noise):
            lines.append(note)
        if self.drift is None:
            lines.append(NO_REFERENCE)
        else:
            lines.append(f"drift: {self.drift['describe']}; 'drift-corrected' divides each measurement by "
                         f"{self.drift['factor']:.4f}")
            if self.fingerprint_diff:
                lines.append(f"note: this device differs from the LUT's ({', '.join(sorted(self.fingerprint_diff))}), "
                             f"so the 'drift' is that difference, not a change over time: neither row judges the "
                             f"LUT; build one on this device")
            elif self.drift["exceeds_noise"]:
                lines.append("WARNING: the drift exceeds the LUT's own noise: judge the LUT by the corrected row, "
                             "or rebuild it")
        return "\n".join(lines)


def run_fidelity(lut: LUT, n: int = 50, seed: int = 1, progress: bool = True, options: dict[str, Any] | None = None,
                 archs: Sequence[SpaceArch] | None = None, processes: int = 2, rounds: int = 2,
                 drift: bool = True) -> FidelityReport:
    """Measure ``n`` held-out archs (``rounds`` times, order reversed every other round) and compare.

    ``drift``: re-measure the LUT's reference networks before and after, and report the error corrected for
    the device's change of speed beside the raw one. ``rounds`` >= 2 also reports round-vs-round agreement:
    the same networks measured twice, the ceiling of any fidelity figure on this device today.
    """

    space = lut.search_space()
    predictor = latency_predictor(lut, space)
    raw = latency_predictor(lut, space, calibrated=False)
    calib = lut.calibration or {}
    seen = {r["arch_id"] for r in calib.get("data", [])}
    resolutions = covered_resolutions(lut, space) or None
    archs = list(archs) if archs is not None else sample_archs(space, n, seed, resolutions, exclude=seen, extremes=False)
    options = lut_profiler_options(lut, **(options or {}))
    diff = warn_if_foreign(lut, profiler_for(lut, **options))
    before = check_drift(lut, options) if drift else None
    rounds = max(1, rounds)
    bar = progress_bar(desc=f"measuring {len(archs)} networks x {rounds} round(s) x {max(1, processes)} process(es) "
                            f"({lut.profiler})", unit="net", total=len(archs) * max(1, processes) * rounds,
                       disable=not progress, dynamic_ncols=True)
    measure = arch_measurer(lut.profiler, options, processes, bar)
    per_round, per_round_p10 = [], []
    sampler = host_sampler(options)
    with sampler if sampler is not None else contextlib.nullcontext():
        for r in range(rounds):
            order = list(range(len(archs)))[::(-1 if r % 2 else 1)]
            got = measure([archs[i] for i in order])
            y_r = np.empty(len(archs))
            y_r[order] = [m.median_ms for m in got]
            per_round.append(y_r)
            p_r = np.empty(len(archs))
            p_r[order] = [m.p10_ms for m in got]
            per_round_p10.append(p_r)
    bar.close()
    host = sampler.result() if sampler is not None else None
    Y = np.vstack(per_round)
    y = Y.min(axis=0)
    after = check_drift(lut, options) if drift else None
    d = combine(before, after) if before is not None and after is not None else None
    methods = {}
    preds = predictor.predict_many(archs)
    name = f"LUT + calibration ({predictor.calibration.model})"
    methods[name] = error_stats(preds, y)
    if d is not None:
        methods[name + ", drift-corrected"] = error_stats(preds, y / d.factor)
    methods["LUT sum (uncalibrated)"] = error_stats(raw.predict_many(archs), y)
    costs = np.array([arch_cost(a) for a in archs])
    if calib.get("data"):
        cal_archs = [space.arch_from_dict(r["arch"]) for r in calib["data"]]
        cal_y = np.array([r["measured"]["median_ms"] for r in calib["data"]])
        cal_costs = np.array([arch_cost(a) for a in cal_archs])
        for i, cost in enumerate(("MACs", "params")):
            a = proportional_fit(cal_costs[:, i], cal_y)
            methods[f"latency ∝ {cost} (baseline)"] = error_stats(a * costs[:, i], y)
    low_quantile = None
    P10 = np.vstack(per_round_p10)
    if (low := low_quantile_lut(lut)) is not None:
        low_pred = latency_predictor(low, low.search_space()).predict_many(archs)
        low_quantile = {"model": low.calibration["model"], "fidelity": error_stats(low_pred, P10.min(axis=0)),
                        "repeatability": error_stats(P10[1], P10[0]) if rounds >= 2 else None}
    rows = [{"arch_id": a.id, "resolution": a.resolution, "measured_ms": round(float(m), 5),
             "measured_rounds_ms": [round(float(v), 5) for v in Y[:, i]],
             "measured_rounds_p10_ms": [round(float(v), 5) for v in P10[:, i]],
             "predicted_ms": round(float(p), 5), "error_pct": round(float(error_pct(p, m)), 3),
             "macs_m": round(c[0] / 1e6, 2)} for i, (a, m, p, c) in enumerate(zip(archs, y, preds, costs))]
    return FidelityReport(str(lut.path), lut.profiler, len(archs), seed, processes, methods, rows,
                          {k: list(v) for k, v in diff.items()}, rounds,
                          error_stats(Y[1], Y[0]) if rounds >= 2 else None,
                          {**d.to_dict(), "before": before.to_dict(), "after": after.to_dict()} if d else None,
                          lut.precision, lut.provenance, lut.batch_size, noise_of(lut),
                          host.to_dict() if host is not None else None, low_quantile)
