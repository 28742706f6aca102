"""A LUT build judges its own measurements and records the verdict (``settings["noise"]``), so a noisy LUT is never
written as done in silence (issue 45 item 4) and its warning names the cause (issue 49: busy neighbour or the
device's own noise). The signals are the build's own: the calibration's leave-one-out MAPE, the blocks' robust CVs,
and the host sampled while it measured (:mod:`hwnas.measuring.host_load`). :mod:`hwnas.latency.quality` reads it.
"""
from __future__ import annotations

import shlex
from typing import Any, Iterable

from hwnas.latency.lut import LUT, now_iso
from hwnas.latency.quality import NOISY, NOT_NOISE, POOR_FIT, noise_warning
from hwnas.measuring.calibrate import POOR_FIT_PCT, RETRY_ROBUST_CV
from hwnas.measuring.host_load import BUSY_NEIGHBOUR, OWN_NOISE, HostLoad, HostSampler, classify

NOISY_BLOCK_CV = 0.10         # a block whose kept measurement still spreads this much (robust CV) is noisy ...
NOISY_BLOCKS_PCT = 10.0       # ... and a LUT with more than this share of such blocks is not trustworthy


def host_sampler(options: dict[str, Any]) -> HostSampler | None:
    """A sampler of this host, or None when the measuring happens elsewhere (a device agent, an offline bundle's
    timings): this host's neighbours say nothing about that device."""
    return None if options.get("device") else HostSampler()


def reasons_of(lut: LUT, keys: Iterable[str], calibrated_now: bool) -> tuple[list[str], dict[str, Any]]:
    """What says the measurements made now are not trustworthy (empty: nothing), and the figures behind it."""
    reasons: list[str] = []
    figures: dict[str, Any] = {}
    cvs = [float(lut.entries[k].get("robust_cv", 0.0)) for k in keys if k in lut.entries]
    if cvs:
        share = 100.0 * sum(cv > NOISY_BLOCK_CV for cv in cvs) / len(cvs)
        figures.update(blocks_measured=len(cvs), noisy_blocks_pct=round(share, 1), worst_block_cv=round(max(cvs), 4))
        if share > NOISY_BLOCKS_PCT:
            reasons.append(f"{share:.0f} % of the {len(cvs)} blocks measured kept a robust CV above "
                           f"{NOISY_BLOCK_CV:.2f} (worst {max(cvs):.2f})")
    calib = lut.calibration or {}
    loo = (calib.get("loo_mape_pct") or {}).get(calib.get("model")) if calibrated_now and calib.get("complete") \
        else None
    if loo is not None:
        figures["calibration_loo_mape_pct"] = loo
        rows = [r["measured"].get("robust_cv", 0.0) for r in calib.get("data", [])]
        figures["noisy_networks_pct"] = round(100.0 * sum(cv > RETRY_ROBUST_CV for cv in rows) / max(1, len(rows)), 1)
        if loo > POOR_FIT_PCT:
            reasons.append(f"the calibration predicts its own whole networks only within {loo:.1f} % (leave-one-out "
                           f"MAPE; above {POOR_FIT_PCT:.0f} %)")
    return reasons, figures


def finish_command(command: str, blocks_noisy: bool, cause: str, paired: bool) -> str:
    """The one command that measures again what was noisy: the build's own, with ``--recalibrate`` (only the
    calibration was poor) or ``--force`` (the blocks too); on a device noisy by itself, ``--paired`` as well."""
    try:
        words = [w for w in shlex.split(command) if w not in ("--force", "--recalibrate")]
    except ValueError:  # a command line that does not parse back: say it plainly
        words = command.split()
    if cause == OWN_NOISE and not paired:
        words += ["--paired", "--force"]  # a LUT is paired from its first block or not at all
    else:
        words.append("--force" if blocks_noisy else "--recalibrate")
    return " ".join(shlex.quote(w) for w in words)


def record_noise(lut: LUT, keys: Iterable[str], host: HostLoad | None, calibrated_now: bool) -> dict[str, Any]:
    """Judge the measurements made now (blocks ``keys``, the calibration when ``calibrated_now``) and keep the
    verdict in ``lut.settings["noise"]``."""
    reasons, figures = reasons_of(lut, list(keys), calibrated_now)
    cause = classify(host, bool(reasons))
    blocks_noisy = figures.get("noisy_blocks_pct", 0.0) > NOISY_BLOCKS_PCT
    calm = not blocks_noisy and figures.get("noisy_networks_pct", 0.0) <= NOISY_BLOCKS_PCT
    quality = "ok" if not reasons else NOISY
    finish = finish_command(lut.command, blocks_noisy, cause, bool(lut.settings.get("pairing"))) if reasons else None
    if reasons and calm and cause != BUSY_NEIGHBOUR:
        # every block and network repeated calmly, yet the fit is poor: the blocks' sum misses what the networks
        # run as a whole (fusions across blocks, another cost structure). Measuring again changes nothing.
        quality, cause = POOR_FIT, NOT_NOISE
        finish = f"python tools/bench_fidelity.py --lut {lut.path} --n 50  # how well it ranks held-out networks"
    rec = {"quality": quality, "cause": cause, "reasons": reasons, **figures,
           "host": host.to_dict() if host is not None else None, "measured": now_iso(), "finish": finish}
    lut.settings["noise"] = rec
    return rec


def build_warning(noise: dict[str, Any] | None, calibration: dict[str, Any] | None, path: Any = None) -> str | None:
    """What a build (or the demo, for a LUT it built, reused or shipped) says on stderr: the LUT's own verdict
    when it has one (cause and finishing command); else, for LUTs built before it, the calibration's warning."""
    if noise is not None:
        return noise_warning(noise, path)
    from hwnas.measuring.calibrate import calibration_warning

    return calibration_warning(calibration)
