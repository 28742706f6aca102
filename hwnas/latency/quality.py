"""Whether a LUT can be trusted, as its build judged it: the one warning every command that reads it prints.

A LUT built beside a busy neighbour (issue 45: calibration leave-one-out MAPE 43 %, block CVs up to 4.5) or on a
noisy device was written as done with only a passing warning. The build now records what it saw in
``settings["noise"]`` (:mod:`hwnas.measuring.build_noise`): ``quality`` ("ok" or "noisy"), the ``reasons``, the
``cause`` (busy neighbour, own noise, quiet, not observed), the host it sampled and the one command that finishes
the job. LUTs built before have no record and read as before.
"""
from __future__ import annotations

from typing import Any

NOISY = "noisy"
POOR_FIT = "poor fit"    # calm measurements, a poor calibration fit: the model, not the device
NOT_NOISE = "not noise"  # its cause


def noise_of(lut: Any) -> dict[str, Any] | None:
    """The LUT's noise record, or None (older LUTs, transfers, derived LUTs built before it existed)."""
    rec = (getattr(lut, "settings", None) or {}).get("noise")
    return rec if isinstance(rec, dict) else None


def _cause(rec: dict[str, Any]) -> str:
    host = rec.get("host") or {}
    top = "; ".join(f"pid {c['pid']} {c['command']} ({c['cores']:.2f} core)" for c in host.get("top", []))
    top = top or "none seen by name"
    others = f"{host.get('others_cores', 0):.2f} of {host.get('cpus', '?')} cores"
    steal = f"steal {host.get('steal_pct', 0):.1f} %"
    cause = rec.get("cause")
    if cause == "busy neighbour":
        return (f"cause: a busy neighbour: other processes used {others} while it was measured (top: {top}; "
                f"{steal}). Stop them, or pin the measuring away from them (--pin-cpu N), then when the host is "
                f"quiet finish with:")
    if cause == NOT_NOISE:
        return ("cause: not noise: every block and calibration network repeated calmly, so the sum of the blocks "
                "does not describe these networks (the runtime fuses across blocks, or their costs do not add); "
                "measuring again will not change it. Its predictions rank networks only as well as the fidelity "
                "bench shows:")
    if cause == "own noise":
        return (f"cause: the device's own noise: no other process took the CPU ({others}; {steal}), so the device "
                f"itself varies (frequency scaling, a noisy VM host, throttling). `hwnas probe` says how finely it can "
                f"be judged; measure with --paired or more --processes, or accept predictions no better than that. "
                f"To measure again:")
    return ("cause not observed (measured on a device agent or without /proc); `hwnas probe` on the device says "
            "which. To measure again when it is quiet:")


def quality_warning(lut: Any) -> str | None:
    """The warning for a LUT its build found noisy (None otherwise); its last line is the command to run."""
    return noise_warning(noise_of(lut), getattr(lut, "path", None))


def noise_warning(rec: dict[str, Any] | None, path: Any = None) -> str | None:
    """:func:`quality_warning` from the record itself (a build's result holds it before anyone loads the file)."""
    if not rec or rec.get("quality") not in (NOISY, POOR_FIT):
        return None
    reasons = "; ".join(rec.get("reasons") or []) or "its measurements were noisy"
    return (f"WARNING: {path or 'this LUT'} is not trustworthy (quality: {rec['quality']}): {reasons}. {_cause(rec)}\n"
            f"  {rec.get('finish') or 'the same hwnas profile command with --recalibrate'}")


def noise_note(rec: dict[str, Any] | None) -> str | None:
    """One line on the device's noise when the LUT was built, for reports beside their repeatability row."""
    if not rec:
        return None
    host = rec.get("host") or {}
    seen = (f"other processes {host.get('others_cores', 0):.2f} core(s), steal {host.get('steal_pct', 0):.1f} %"
            if host else "host not observed")
    reasons = "; ".join(rec.get("reasons") or []) or "no noise signal"
    return f"when the LUT was built: {rec.get('cause', '?')} ({seen}); quality {rec.get('quality', '?')}: {reasons}"
