"""What finalize returns: the bundle's report with typed views of what callers read, and the one verdict line.

The report (``report.json``) stays the record on disk; :class:`FinalizeResult` wraps it so the CLI and the
demo print the same line from the same numbers instead of each digging in the nested dict."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LatencyVerdict:
    """The measured latency of the shipped model against the budget and the LUT's prediction."""

    verdict: str                    # PASS, FAIL, UNCERTAIN (too noisy to tell) or NO BUDGET (the raw median, never corrected)
    profiler: str
    precision: str
    measured_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    predicted_ms: float | None      # None when measured with another profiler than the LUT's
    prediction_error_pct: float | None
    drift_corrected_error_pct: float | None
    budget_ms: float | None
    gap_ms: float | None
    provenance: str | None = None   # "transferred from ..." for a transfer LUT
    spread: tuple[str, ...] = ()    # UNCERTAIN: what made the measurement undecided
    advice: str | None = None       # UNCERTAIN: what to do

    @classmethod
    def of(cls, latency: dict[str, Any], provenance: str | None = None) -> "LatencyVerdict":
        m = latency["measured"]
        return cls(verdict=latency["verdict"], profiler=latency["profiler"], precision=latency.get("precision", "fp32"),
                   measured_ms=m["median_ms"], p10_ms=m["p10_ms"], p90_ms=m["p90_ms"], cv=m["cv"],
                   predicted_ms=latency["predicted_ms"], prediction_error_pct=latency["prediction_error_pct"],
                   drift_corrected_error_pct=latency.get("prediction_error_drift_corrected_pct"),
                   budget_ms=latency["budget_ms"], gap_ms=latency["gap_ms"], provenance=provenance or None,
                   spread=tuple((latency.get("uncertain") or {}).get("spread") or ()),
                   advice=(latency.get("uncertain") or {}).get("advice"))

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"

    @property
    def uncertain(self) -> bool:
        return self.verdict == "UNCERTAIN"

    def line(self) -> str:
        """``PASS: measured median ... with PROFILER; predicted ... (error; drift-corrected; provenance), budget``."""
        pred = ""
        if self.predicted_ms is not None:
            notes = [f"{self.prediction_error_pct:+.1f} %"]
            if self.drift_corrected_error_pct is not None:
                notes.append(f"{self.drift_corrected_error_pct:+.1f} % corrected for drift")
            if self.provenance:
                notes.append(self.provenance)
            pred = f"predicted {self.predicted_ms:.3f} ms ({'; '.join(notes)}), "
        budget = f"{self.budget_ms:g} ms" if self.budget_ms is not None else "none"
        return (f"{self.verdict}: measured median {self.measured_ms:.3f} ms (p10 {self.p10_ms:.3f}, p90 "
                f"{self.p90_ms:.3f}, CV {self.cv * 100:.1f} %) with {self.profiler}; {pred}budget {budget}"
                + (f"; over by {self.gap_ms:.3f} ms" if self.failed else "")
                + (f"; measured twice, too noisy to judge ({'; '.join(self.spread)}): {self.advice}"
                   if self.uncertain else ""))


@dataclass(frozen=True)
class FinalizeResult:
    """The bundle finalize published at ``out`` and its report (``report``: what ``report.json`` holds); callers
    read the typed attributes below."""

    out: Path
    report: dict[str, Any]

    @property
    def arch_id(self) -> str:
        return self.report["arch_id"]

    @property
    def test_accuracy(self) -> float:
        return self.report["accuracy"]["test"]

    @property
    def files(self) -> list[str]:
        return list(self.report["files"])

    @property
    def latency(self) -> LatencyVerdict:
        return LatencyVerdict.of(self.report["latency"], (self.report.get("lut") or {}).get("provenance"))

    @property
    def int8(self) -> dict[str, Any] | None:
        return self.report.get("int8")

    def lines(self) -> list[str]:
        """What ``hwnas finalize`` prints: the verdict, the int8 checks when int8 is what ships, the bundle."""
        out = [self.latency.line()]
        q = self.int8 or {}
        if q.get("target"):
            out.append(f"int8 (the LUT's precision; the verdict above is model.int8's): test accuracy "
                       f"{q['test_accuracy']:.2f} % against fp32 {q['fp32_test_accuracy']:.2f} % "
                       f"({q['accuracy_delta_pct']:+.2f}), top-1 agreement {q['top1_agreement_pct']:.1f} %")
        out.append(f"test accuracy {self.test_accuracy:.2f} %; bundle: {self.out}/ ({', '.join(self.files)})")
        return out


def below_budget_line(budget_ms: float, below: dict[str, Any]) -> str:
    """``below the budget of 0.12 ms: predicted 0.006 ms (5.0 %), measured ... (the search kept a 5 % margin)``."""
    def part(kind: str) -> str:
        return f"{kind} {below[kind + '_ms']:.3f} ms ({below[kind + '_pct']:.1f} %)"

    parts = [part(k) for k in ("predicted", "measured") if below.get(k + "_ms") is not None]
    margin = below.get("margin")
    return (f"below the budget of {budget_ms:g} ms: {', '.join(parts)} (negative: over it); "
            + (f"the search kept a {margin * 100:g} % margin" if margin else "the search kept no margin (--margin)"))
