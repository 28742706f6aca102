"""Build a LUT: time every distinct block of a space with one profiler, resumably.

The output file is saved atomically at least every second, so a build that is
interrupted (Ctrl-C, kill -9, a reboot) resumes from the entries already saved
when the same command runs again.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from hwnas.lut import LUT, LUTError, fingerprint_diff
from hwnas.space import SearchSpace
from profilers import Measurement, ProfilerUnavailable, create_profiler


@dataclass(frozen=True)
class BuildReport:
    path: Path
    entries: int
    measured: int
    resumed: int
    remeasured: int
    seconds: float
    calibrated: bool


def entry_from(m: Measurement, attempts: int) -> dict[str, Any]:
    d = m.to_dict()
    d.pop("mean_ms", None)
    d["attempts"] = attempts
    return d


def measure_stable(profiler: Any, module: Any, input_shape: tuple[int, ...], cv_threshold: float,
                   retries: int) -> tuple[Measurement, int]:
    """Measure; while the robust CV is above the threshold, measure again (up to ``retries`` more), keep the calmest."""
    best = profiler.measure(module, input_shape)
    attempts = 1
    while best.robust_cv > cv_threshold and attempts <= retries:
        m = profiler.measure(module, input_shape)
        attempts += 1
        if m.robust_cv < best.robust_cv:
            best = m
    return best, attempts


def open_lut(out: Path, profiler: Any, space: SearchSpace, command: str, force: bool) -> LUT:
    """A fresh LUT, or the one at ``out`` when it was made by this profiler, device and space (resume)."""
    fp = profiler.fingerprint()
    if out.exists() and not force:
        try:
            lut = LUT.load(out)
        except LUTError as e:
            raise LUTError(f"{e}\n(--force starts a new LUT at {out}, discarding the file)") from None
        problems = []
        if lut.profiler != profiler.name:
            problems.append(f"profiler {lut.profiler!r} != {profiler.name!r}")
        diff = fingerprint_diff(lut.fingerprint, fp)
        problems += [f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in diff.items()]
        if lut.space != space.to_dict():
            problems.append(f"search space differs (file: {lut.space.get('name')!r}, this run: {space.name!r})")
        if problems:
            raise LUTError(f"{out} exists but was built differently, so entries cannot be mixed: "
                           + "; ".join(problems) + ". Choose another --out, or --force to start over.")
        lut.command = command
        return lut
    return LUT(profiler=profiler.name, settings=profiler.settings(), fingerprint=fp, space=space.to_dict(),
               command=command, path=out)


def build_lut(profiler_name: str, space: SearchSpace, out: str | Path, *, resolutions: Iterable[int] | None = None,
              profiler_options: dict[str, Any] | None = None, command: str | None = None, force: bool = False,
              cv_threshold: float = 0.05, retries: int = 2, calibrate: bool = True, calib_archs: int = 30,
              seed: int = 0, progress: bool = True, recalibrate: bool = False) -> BuildReport:
    out = Path(out)
    command = command or " ".join(sys.argv)
    profiler = create_profiler(profiler_name, **(profiler_options or {}))
    reason = profiler.availability()
    if reason:
        raise ProfilerUnavailable(f"profiler {profiler_name!r} is unavailable here: {reason}")
    if hasattr(profiler, "prepare"):
        profiler.prepare()  # pin/threads/allocator before the fingerprint is recorded
    resolutions = tuple(resolutions) if resolutions is not None else space.resolutions
    descs = space.all_layers(resolutions)
    lut = open_lut(out, profiler, space, command, force)
    if recalibrate:
        lut.calibration = None
    todo = [d for d in descs if d.key not in lut.entries]
    resumed = len(descs) - len(todo)
    start = time.perf_counter()
    remeasured = 0
    last_save = 0.0
    bar = tqdm(total=len(descs), initial=resumed, desc=f"profiling {profiler_name}", unit="block",
               disable=not progress, dynamic_ncols=True)
    try:
        lut.save(out)
        for d in todo:
            bar.set_postfix_str(d.key, refresh=False)
            m, attempts = measure_stable(profiler, d.build(), d.input_shape, cv_threshold, retries)
            remeasured += attempts > 1
            lut.entries[d.key] = entry_from(m, attempts)
            lut.calibration = None  # any new entry makes an old calibration stale
            if time.perf_counter() - last_save > 1.0:
                lut.save(out)
                last_save = time.perf_counter()
            bar.update(1)
    finally:
        bar.close()
        lut.save(out)  # also on Ctrl-C: everything measured so far is kept
    calibrated = False
    done = lut.calibration or {}
    if calibrate and done.get("complete") and done.get("seed") == seed and len(done.get("data", [])) >= calib_archs:
        calibrated = True  # nothing changed since the last calibration
    elif calibrate:
        from hwnas.calibrate import calibrate_lut

        calibrate_lut(lut, profiler, n_archs=calib_archs, seed=seed, resolutions=resolutions, progress=progress)
        calibrated = True
    return BuildReport(out, len(lut.entries), len(todo), resumed, remeasured, time.perf_counter() - start, calibrated)
