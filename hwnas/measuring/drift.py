"""How fast is this device now, compared with when its LUT was built?

Seen here: the same 30 held-out networks measured 40 minutes apart (fresh
processes, lowest median of 2) differed by a median 5.2 % (per network -13 % to
+6 %); with the LUT unchanged its held-out fidelity fell from 98 % to 87 % within
±10 %. On a phone the same thing is thermal state. So a LUT keeps a short
*reference*: a few fixed networks of its space, each measured in several fresh
processes when the LUT was built (the gap between the two calmest is the LUT's own noise).
Re-measuring them before judging a prediction says how much of an error is the
device having changed speed, not the LUT being wrong.

The verdict against a budget always stays on the raw measured latency; the
drift-corrected error is reported beside the raw one, never instead of it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from hwnas.core.metrics import error_pct
from hwnas.latency.lut import LUT, now_iso

REFERENCE_NETS = 3          # smallest, largest and one random network of the space
REFERENCE_PROCESSES = 3     # at build time (more while the two calmest disagree): their gap is the noise
CHECK_PROCESSES = 2         # when checking: lowest median of 2 fresh processes, as everywhere else
MIN_NOISE_PCT = 1.0         # below this, "exceeds the noise" would fire on timer jitter alone


@dataclass(frozen=True)
class Drift:
    """``factor`` = measured now / measured at build time (median over the reference networks).

    < 1: the device is faster now than when the LUT was built.
    """

    factor: float
    per_net: tuple[float, ...]
    noise_pct: float | None     # the LUT's own spread of the reference (None: the LUT predates references)
    source: str                 # "reference" or "calibration" (older LUTs: their first calibration networks)
    measured_at: str

    @property
    def pct(self) -> float:
        return (self.factor - 1.0) * 100

    @property
    def exceeds_noise(self) -> bool:
        return abs(self.pct) > max(self.noise_pct if self.noise_pct is not None else 0.0, MIN_NOISE_PCT)

    def describe(self) -> str:
        speed = "faster" if self.factor < 1 else "slower"
        noise = (f"the LUT's own noise ±{self.noise_pct:.1f} %" if self.noise_pct is not None
                 else "the LUT's own noise unknown: it predates reference measurements")
        spread = f"{(min(self.per_net) - 1) * 100:+.1f} … {(max(self.per_net) - 1) * 100:+.1f} %"
        return (f"device now {abs(self.pct):.1f} % {speed} than when the LUT was built "
                f"({len(self.per_net)} reference networks: {spread}; {noise})")

    def warning(self) -> str | None:
        if not self.exceeds_noise:
            return None
        return (f"WARNING: the device's speed drifted {self.pct:+.1f} % since the LUT was built, more than the "
                f"LUT's own noise; prediction errors below are partly drift (see the corrected error), and a "
                f"LUT rebuilt now (same command with --force) would predict this state")

    def correct(self, measured_ms: float) -> float:
        """The measured latency as the device would have shown it when the LUT was built."""
        return measured_ms / self.factor

    def corrected_error_pct(self, predicted_ms: float, measured_ms: float) -> float:
        """The prediction's error against the measurement as the device would have shown it at build time."""
        return error_pct(predicted_ms, self.correct(measured_ms))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pct": round(self.pct, 3), "exceeds_noise": self.exceeds_noise,
                "describe": self.describe()}


NO_REFERENCE = ("drift not checked: the LUT has neither reference nor calibration measurements "
                "(built with --no-calibrate?); rebuild it without that flag to get them")


def reference_archs(lut: LUT) -> tuple[list[dict[str, Any]], list[float], float | None, str] | None:
    """(arch dicts, medians at build time, noise %, source) of the LUT's reference networks, or None."""
    ref = lut.reference
    if ref:
        return list(ref["archs"]), [float(v) for v in ref["best_ms"]], float(ref["noise_pct"]), "reference"
    rows = (lut.calibration or {}).get("data", [])[:REFERENCE_NETS]
    if not rows:
        return None
    return [r["arch"] for r in rows], [float(r["measured"]["median_ms"]) for r in rows], None, "calibration"


def _measure(lut: LUT, options: dict[str, Any], archs: Sequence[dict[str, Any]], processes: int) -> np.ndarray:
    """Median of each arch in each of ``processes`` fresh processes: shape (processes or more, archs). While
    some arch's two calmest processes disagree (hwnas.measuring.isolate.agreeing), up to EXTRA_PASSES more processes."""
    from hwnas.measuring.isolate import measure_isolated
    from hwnas.measuring.stability import EXTRA_PASSES, agreeing, agreement_tolerance

    def one() -> list[float]:
        return [m.median_ms for m in measure_isolated(lut.profiler, options, "arch", list(archs),
                                                      space_dict=lut.space, passes=1, chunk=len(archs))]

    rows = [one() for _ in range(processes)]
    tolerance = agreement_tolerance(options)
    for _ in range(EXTRA_PASSES if processes >= 2 else 0):
        if all(agreeing(col, tolerance) for col in zip(*rows)):
            break
        rows.append(one())
    return np.array(rows)


def record_reference(lut: LUT, options: dict[str, Any], seed: int = 0,
                     processes: int = REFERENCE_PROCESSES) -> dict[str, Any]:
    """Measure the reference networks in ``processes`` fresh processes each and keep them in ``lut.reference``."""
    from hwnas.measuring.sampling import sample_archs

    space = lut.search_space()
    archs = [a.to_dict() for a in sample_archs(space, REFERENCE_NETS, seed=seed + 7919)]
    runs = _measure(lut, options, archs, max(2, processes))
    ordered = np.sort(runs, axis=0)
    best = ordered[0]
    # the LUT's own noise: how far apart the two calmest processes were, per network (the precision of a
    # lowest median; a process caught in a slow spell of the device says nothing about it)
    spread = (ordered[1] - best) / best * 100
    lut.reference = {"archs": archs, "medians_ms": np.round(runs.T, 6).tolist(),
                     "best_ms": np.round(best, 6).tolist(), "noise_pct": round(float(np.median(spread)), 3),
                     "processes": int(runs.shape[0]), "measured": now_iso()}
    return lut.reference


def check_drift(lut: LUT, options: dict[str, Any], processes: int = CHECK_PROCESSES) -> Drift | None:
    """Re-measure the LUT's reference networks now (lowest median of ``processes`` fresh processes).

    None when the LUT has nothing to compare with (``NO_REFERENCE`` says why).
    """
    found = reference_archs(lut)
    if found is None:
        return None
    archs, then, noise, source = found
    now = _measure(lut, options, archs, max(1, processes)).min(axis=0)
    ratios = now / np.asarray(then)
    return Drift(float(np.median(ratios)), tuple(round(float(r), 5) for r in ratios), noise, source, now_iso())


def combine(before: Drift, after: Drift) -> Drift:
    """One factor for a long measurement bracketed by two checks: the geometric mean of both."""
    factor = float(np.sqrt(before.factor * after.factor))
    return Drift(factor, tuple(float(np.sqrt(a * b)) for a, b in zip(before.per_net, after.per_net)),
                 before.noise_pct, before.source, after.measured_at)
