"""Fit what block sums miss: measure tens of whole networks once, fit a small linear correction.

Block sums miss the glue between blocks, per-call overhead, and (ORT at
ORT_ENABLE_ALL) the NCHWc layout conversions that wrap an isolated block but not
a whole network. Candidate models, linear in
:data:`hwnas.latency.predict.FEATURES` and fitted on relative error:

* ``scale``:  a * lut_sum
* ``affine``: a * lut_sum + d
* ``boundary``: a * lut_sum + b * io_melems + c * blocks + d

The one with the lowest leave-one-out MAPE is kept. The fit data stay in the
LUT, so anyone can refit or audit it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from hwnas.core.progress import progress as progress_bar
from hwnas.latency.lut import LUT, now_iso
from hwnas.measuring.measure import arch_measurer
from hwnas.measuring.sampling import sample_archs  # noqa: F401 - re-exported: calibration networks
from hwnas.latency.predict import FEATURES, latency_predictor

MODELS: dict[str, tuple[int, ...]] = {"scale": (0,), "affine": (0, 3), "boundary": (0, 1, 2, 3)}


def fit(features: np.ndarray, measured: np.ndarray, model: str) -> np.ndarray:
    """Least squares on relative error; returns coefficients over all four FEATURES."""
    cols = MODELS[model]
    A = features[:, cols] / measured[:, None]
    sol, *_ = np.linalg.lstsq(A, np.ones(len(measured)), rcond=None)
    coef = np.zeros(len(FEATURES))
    coef[list(cols)] = sol
    return coef


def loo_mape(features: np.ndarray, measured: np.ndarray, model: str) -> float:
    n = len(measured)
    errs = []
    for i in range(n):
        keep = np.arange(n) != i
        coef = fit(features[keep], measured[keep], model)
        errs.append(abs(features[i] @ coef - measured[i]) / measured[i])
    return float(np.mean(errs) * 100)


def plausible(coef: np.ndarray, features: np.ndarray) -> bool:
    """A fit a LUT may keep: it scales the block sum up, not down, and predicts > 0 ms for every row of
    ``features`` (the networks it was fitted on, and the space's smallest). Few noisy networks can make
    ``boundary`` trade a negative block-sum scale for large io/blocks terms; such a fit extrapolates to
    negative latencies, and ``LUT.load`` refuses it."""
    return bool(coef[0] > 0 and np.all(features @ coef > 0))


def choose_model(features: np.ndarray, measured: np.ndarray,
                 also_positive: np.ndarray | None = None) -> tuple[str, np.ndarray, dict[str, float]]:
    """The plausible model with the lowest leave-one-out MAPE (``scale`` always qualifies: its one
    coefficient is a ratio of positive sums). ``also_positive``: feature rows of other networks (the
    smallest of the space) the fit must predict > 0 ms for."""
    n = len(measured)
    scores = {m: loo_mape(features, measured, m) for m, cols in MODELS.items() if n >= len(cols) + 3}
    fits = {m: fit(features, measured, m) for m in scores}
    rows = features if also_positive is None else np.vstack([features, also_positive])
    ok = [m for m in scores if plausible(fits[m], rows)] or ["scale"]
    best = min(ok, key=scores.get)  # type: ignore[arg-type]
    return best, fits[best] if best in fits else fit(features, measured, best), scores


POOR_FIT_PCT = 10.0  # a calibration whose held-out error is above this cannot support a +-10 % verdict


def calibration_warning(calib: dict[str, Any] | None) -> str | None:
    """A warning when a finished calibration fits its own whole networks poorly (leave-one-out MAPE of the
    chosen model above :data:`POOR_FIT_PCT`): seen when the device was busy or noisy while they were measured (some
    networks timed in a slow spell), so predictions made with it are no better than that. For LUTs built before
    the build judged itself (:mod:`hwnas.measuring.build_noise`, which also names the cause)."""
    if not calib or not calib.get("complete"):
        return None
    loo = (calib.get("loo_mape_pct") or {}).get(calib.get("model"))
    if loo is None or loo <= POOR_FIT_PCT:
        return None
    return (f"WARNING: the calibration predicts its own whole networks only within {loo:.1f} % (leave-one-out "
            f"MAPE; above {POOR_FIT_PCT:.0f} %): measured while the device was busy or noisy (`hwnas probe` says "
            f"which). Measure again when it is quiet: the same command with --recalibrate")


# Whole networks measured per call of the measurer, the LUT saved after each call. In fresh processes a
# batch costs a process start per pass, so 10 (the measurer's own chunk) keeps the process count of one
# call for all; in this process every network is saved as it comes.
SAVE_EVERY = 10


def measured_only(calib: dict[str, Any] | None) -> dict[str, Any] | None:
    """A calibration whose blocks changed (measured anew, or added: a LUT filled in): its fit is stale, its
    measured networks are not (a network's latency does not depend on how its blocks were timed), so they
    are kept for :func:`calibrate_lut` to refit on their recomputed features instead of measuring them again."""
    if not calib:
        return None
    keep = ("seed", "n_archs", "processes", "features", "data")
    return {**{k: calib[k] for k in keep if k in calib}, "complete": False}


# A calibration network whose samples spread more than this (robust CV) was caught in a slow spell: measured once more
# (the lower median kept), as a block is. Seen: the nb201 LUT's 5 of 30 networks at robust CV 0.4-1.0 and 2-3x their
# calm latency, measured on a host that later repeated the same networks within 0.3 %: its leave-one-out error was
# 23 % and its held-out ranking (tau 0.77) worse than MACs'.
RETRY_ROBUST_CV = 0.10


def _retry_noisy_rows(calib: dict[str, Any], by_id: dict[str, Any], measure: Any, bar: Any) -> None:
    """Measure once more every row (new or resumed) still over RETRY_ROBUST_CV that was not retried before."""
    noisy = [r for r in calib["data"] if r["measured"].get("robust_cv", 0.0) > RETRY_ROBUST_CV and not r.get("retried")
             and r["arch_id"] in by_id]
    if not noisy:
        return
    bar.total += len(noisy) * max(1, calib.get("processes") or 1)
    bar.set_postfix_str(f"re-measuring {len(noisy)} noisy network(s)", refresh=False)
    for row, m in zip(noisy, measure([by_id[r["arch_id"]] for r in noisy])):
        if m.median_ms < row["measured"]["median_ms"]:
            row["measured"] = m.to_dict()
        row["retried"] = True


def resumable_rows(lut: LUT, archs: Sequence[Any], seed: int) -> dict[str, dict[str, Any]]:
    """Rows of an earlier (maybe killed) calibration that this one would measure again: same seed, same archs."""
    prev = lut.calibration or {}
    if prev.get("seed") != seed:
        return {}
    wanted = {a.id for a in archs}
    return {r["arch_id"]: r for r in prev.get("data", []) if r.get("arch_id") in wanted}


def calibrate_lut(lut: LUT, profiler_name: str, options: dict[str, Any], n_archs: int = 30, seed: int = 0,
                  resolutions: Sequence[int] | None = None, progress: bool = True, save: bool = True,
                  processes: int = 2) -> dict[str, Any]:
    """Measure ``n_archs`` whole networks, fit, store in ``lut.calibration``.

    Each network is measured in ``processes`` fresh processes and keeps its lowest median (0: in
    this process). Measurements are saved into the LUT as they come (``save``), and networks already
    measured with the same seed are kept (their features recomputed): a killed calibration resumes where it
    stopped, and a LUT whose blocks changed is refitted without measuring its networks again.
    """
    space = lut.search_space()
    predictor = latency_predictor(lut, space, calibrated=False)
    archs = sample_archs(space, n_archs, seed, resolutions)
    rows = resumable_rows(lut, archs, seed)
    if rows:  # features from the blocks as they are now (some may have been measured since)
        by_id = {a.id: a for a in archs}
        kept = [by_id[k] for k in rows]
        for arch, f in zip(kept, predictor.features_many(kept)):
            rows[arch.id] = {**rows[arch.id], "features": [round(float(v), 6) for v in f]}
    calib: dict[str, Any] = {"seed": seed, "n_archs": n_archs, "processes": processes, "features": list(FEATURES),
                             "data": list(rows.values()), "complete": False}
    lut.calibration = calib
    todo = [a for a in archs if a.id not in rows]
    passes = max(1, processes)
    bar = progress_bar(desc=f"calibrating {lut.profiler} ({len(todo)} whole networks x {passes} process(es))",
                       unit="net",
                       total=len(todo) * passes, disable=not progress, dynamic_ncols=True)
    measure = arch_measurer(profiler_name, options, processes, bar)
    step = SAVE_EVERY if processes > 0 else 1
    try:
        for i in range(0, len(todo), step):
            batch = todo[i:i + step]
            for arch, f, m in zip(batch, predictor.features_many(batch), measure(batch)):
                calib["data"].append({"arch_id": arch.id, "arch": arch.to_dict(),
                                      "features": [round(float(v), 6) for v in f], "measured": m.to_dict()})
            if save:
                lut.save()
        _retry_noisy_rows(calib, {a.id: a for a in archs}, measure, bar)
        if save:
            lut.save()
    finally:
        bar.close()
    F = np.array([r["features"] for r in calib["data"]], dtype=float)
    y = np.array([r["measured"]["median_ms"] for r in calib["data"]], dtype=float)
    res = list(resolutions or space.resolutions)
    smallest = replace(space.smallest(), resolution=min(res))
    model, coef, scores = choose_model(F, y, np.asarray(predictor.features_many([smallest]), float))
    pred = F @ coef
    calib.update({
        "model": model,
        "coef": [float(c) for c in coef],
        "loo_mape_pct": {k: round(v, 3) for k, v in scores.items()},
        "fit_mape_pct": round(float(np.mean(np.abs(pred - y) / y) * 100), 3),
        "uncalibrated_mape_pct": round(float(np.mean(np.abs(F[:, 0] - y) / y) * 100), 3),
        "fitted": now_iso(),
        "complete": True,
    })
    if save:
        lut.save()
    return calib
