"""Build a LUT: time every distinct block of a space with one profiler, resumably.

The output file is saved atomically at least every second, so a build that is
interrupted (Ctrl-C, kill -9, a reboot) resumes from the entries already saved
when the same command runs again.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable


from hwnas.core.progress import progress as progress_bar
from hwnas.measuring.build_noise import build_warning, host_sampler, record_noise
from hwnas.measuring.calibrate import measured_only
from hwnas.measuring.stability import agreeing, agreement_tolerance
from hwnas.latency.lut import LUT, LUTError, fingerprint_diff
from hwnas.latency.quality import NOISY, POOR_FIT
from hwnas.measuring.measure import available_profiler, in_process_settings
from hwnas.spaces.base import Space
from hwnas.profilers import Measurement


@dataclass(frozen=True)
class LutBuildResult:
    """What a LUT build did: the file, its entries, how many block measurements were made now or resumed,
    and the calibration it ended with (the LUT's own record, None when built with --no-calibrate)."""

    path: Path
    entries: int
    measured: int      # block measurements made by this call (entries x passes)
    resumed: int       # block measurements reused from the file
    remeasured: int    # entries whose kept median came from a retry or a later pass
    seconds: float
    calibrated: bool
    calibration: dict[str, Any] | None = None
    noise: dict[str, Any] | None = None  # the LUT's own verdict on its measurements (hwnas.measuring.build_noise)

    def lines(self) -> list[str]:
        """What ``hwnas profile`` prints on stdout."""
        out = [f"LUT {self.path}: {self.entries} entries ({self.measured} block measurements now, {self.resumed} "
               f"resumed from the file; {self.remeasured} entries kept a later, calmer measurement) in "
               f"{self.seconds:.0f} s" + ("; calibrated" if self.calibrated else "")]
        calib = self.calibration
        if calib and calib.get("complete"):
            out.append(f"calibration: model {calib['model']}, fit MAPE {calib['fit_mape_pct']:.2f} % (uncalibrated "
                       f"LUT sum {calib['uncalibrated_mape_pct']:.2f} %) on {len(calib['data'])} whole networks")
        if self.noise and self.noise.get("quality") == NOISY:  # exit 0, but the LUT is not called done
            out.append(f"LUT written but NOT trustworthy (quality: noisy, cause: {self.noise['cause']}): see the "
                       f"warning; finish with: {self.noise['finish']}")
        elif self.noise and self.noise.get("quality") == POOR_FIT:
            out.append(f"LUT written; its calibration fits poorly though every measurement was calm (not noise): "
                       f"judge it with: {self.noise['finish']}")
        return out

    def warning(self) -> str | None:
        """For stderr: the build's verdict on its own measurements when it made one, naming the cause and the
        command that finishes the job; else (a build that only resumed an older LUT) the calibration's."""
        return build_warning(self.noise, self.calibration, self.path)



def entry_from(m: Measurement, attempts: int) -> dict[str, Any]:
    d = m.to_dict()
    d.pop("mean_ms", None)
    d["attempts"] = attempts
    return d


def retry_while_noisy(first: Measurement, again: Callable[[], Measurement], cv_threshold: float,
                      retries: int) -> tuple[Measurement, int]:
    """While the last measurement's robust CV is above the threshold, measure ``again`` (up to ``retries`` more).

    Keeps the lowest median, the same rule as the isolated passes: interference only ever adds time.
    LUT entries and finalize's verdict both go through here.
    """
    best = last = first
    attempts = 1
    while last.robust_cv > cv_threshold and attempts <= retries:
        last = again()
        attempts += 1
        if last.median_ms < best.median_ms:
            best = last
    return best, attempts


def measure_stable(profiler: Any, module: Any, input_shape: tuple[int, ...], cv_threshold: float,
                   retries: int) -> tuple[Measurement, int]:
    """Measure in this process, again while noisy (see ``retry_while_noisy``)."""
    return retry_while_noisy(profiler.measure(module, input_shape), lambda: profiler.measure(module, input_shape),
                             cv_threshold, retries)


def open_lut(out: Path, profiler: Any, space: Space, command: str, force: bool) -> LUT:
    """A fresh LUT, or the one at ``out`` when it was made by this profiler, device and space (resume)."""
    fp = profiler.fingerprint()
    if out.exists() and not force:
        try:
            lut = LUT.load(out)
        except LUTError as e:
            raise LUTError(f"{e}\n(--force starts a new LUT at {out}, discarding the file)") from None
        if lut.transfer:  # its entries were fitted, not measured: a build would mix the two
            raise LUTError(f"{out} is a LUT {lut.provenance}; a full build writes its own file: choose another --out, "
                           f"or --force to replace it")
        problems = []
        here = getattr(profiler, "precision", "fp32")
        if lut.precision != here:  # said first and alone: the fix is a flag, not another --out
            raise LUTError(f"{out} is an {lut.precision} LUT and this run measures {here}: a LUT never mixes "
                           f"precisions; run with --precision {lut.precision} to resume it, or give another --out")
        here_batch = getattr(profiler, "batch_size", 1)
        if lut.batch_size != here_batch:  # likewise: ms per batch of 1 and per batch of 32 are not one table
            raise LUTError(f"{out} is a batch-{lut.batch_size} LUT and this run measures batch {here_batch}: a LUT "
                           f"never mixes batch sizes; run with --batch-size {lut.batch_size} to resume it, or give "
                           f"another --out")
        if lut.profiler != profiler.name:
            problems.append(f"profiler {lut.profiler!r} != {profiler.name!r}")
        diff = fingerprint_diff(lut.fingerprint, fp)
        problems += [f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in diff.items()]
        if lut.space != space.to_dict():
            problems.append(f"search space differs (file: {lut.space.get('name')!r}, this run: {space.name!r}; to "
                            f"reuse its blocks for this space: hwnas profile --lut {out} --space-file SPACE "
                            f"--out NEW_LUT measures only the blocks it lacks)")
        if problems:
            raise LUTError(f"{out} exists but was built differently, so entries cannot be mixed: "
                           + "; ".join(problems) + ". Choose another --out, or --force to start over.")
        lut.command = command
        return lut
    return LUT(profiler=profiler.name, settings=profiler.settings(), fingerprint=fp, space=space.to_dict(),
               command=command, path=out)


def build_lut(profiler_name: str, space: Space, out: str | Path, *, resolutions: Iterable[int] | None = None,
              profiler_options: dict[str, Any] | None = None, command: str | None = None, force: bool = False,
              cv_threshold: float = 0.05, retries: int = 2, calibrate: bool = True, calib_archs: int = 30,
              seed: int = 0, progress: bool = True, recalibrate: bool = False, processes: int = 2,
              chunk: int = 24, reference: bool | None = None, paired: bool = False) -> LutBuildResult:
    """Time every block of ``space`` (at ``resolutions``) and write/extend the LUT at ``out``.

    ``processes`` >= 1: each entry is measured in that many passes, each in fresh worker processes
    (a new one every ``chunk`` blocks, order reversed every other pass), keeping the lowest median.
    Either way an entry whose robust CV stays above ``cv_threshold`` is measured again (in
    isolation: once more after the passes; in this process, ``processes`` = 0: up to ``retries`` times).
    ``reference`` (default: as ``calibrate``): finally measure the drift reference (hwnas.measuring.drift), a few whole
    networks in fresh processes. ``paired``: every measurement alternates with a fixed reference network
    (hwnas.measuring.pairing), so slow spells of the device cancel; a LUT begun paired stays paired.
    This process is never pinned nor thread-limited: only the measuring (workers, or ``applied()``) is.
    """
    out = Path(out)
    if out.is_dir():
        raise LUTError(f"--out {out} is a directory; give the LUT's file path, e.g. {out / 'my-lut.json'}")
    command = command or " ".join(sys.argv)
    options = dict(profiler_options or {})
    profiler = available_profiler(profiler_name, options)
    resolutions = tuple(resolutions) if resolutions is not None else space.resolutions
    descs = space.all_layers(resolutions)
    lut = open_lut(out, profiler, space, command, force)
    if paired or lut.settings.get("pairing"):  # a LUT begun paired stays paired: one way of measuring per LUT
        from hwnas.measuring.pairing import establish, pairing_options

        if "pair_with" not in inspect.signature(type(profiler)).parameters:
            raise LUTError(f"--paired needs a profiler that times model files (ort-cpu, ort-mobile), not "
                           f"{profiler_name!r}")
        if not lut.settings.get("pairing"):
            pairing = establish(lut, profiler_name, options, seed)
            if progress:
                print(f"pairing: every measurement alternates with reference network {pairing['reference_id']} "
                      f"(calm {pairing['calm_ms']:.4f} ms, lowest of {pairing['processes']} fresh processes)",
                      file=sys.stderr)
        options.update(pairing_options(lut))
    lut.settings["isolation"] = (f"{processes} pass(es) in fresh processes, lowest median kept" if processes
                                 else "in one process")
    if recalibrate:
        lut.calibration = None
    passes = max(1, processes)
    todo = [d for d in descs if lut.entries.get(d.key, {}).get("passes", 0) < passes]
    resumed = sum(min(lut.entries.get(d.key, {}).get("passes", 0), passes) for d in descs)  # measurements reused
    start = time.perf_counter()
    remeasured = 0
    state = {"last_save": 0.0}

    # each pass's median per entry (an entry resumed from the file starts from its best so far): an entry
    # whose two lowest disagree is measured again below (a process was likely caught in a slow spell)
    pass_medians: dict[str, list[float]] = {}

    def keep(key: str, m: Measurement, attempts: int, pass_no: int) -> None:
        """Record a pass; the lowest median across passes stands."""
        old = lut.entries.get(key)
        if old is not None and key not in pass_medians:
            pass_medians[key] = [old["median_ms"]]
        pass_medians.setdefault(key, []).append(m.median_ms)
        if old is None or m.median_ms < old["median_ms"]:
            lut.entries[key] = {**entry_from(m, attempts), "passes": pass_no}
        else:
            old["passes"] = pass_no
        lut.calibration = measured_only(lut.calibration)  # new measurements: refit, keeping the measured networks
        if time.perf_counter() - state["last_save"] > 1.0:
            lut.save(out)
            state["last_save"] = time.perf_counter()

    sampler = host_sampler(options)  # who else used the CPU while this build measured (busy neighbour?)
    with sampler if sampler is not None else contextlib.nullcontext():
        bar = progress_bar(total=len(descs) * passes, initial=resumed, desc=f"profiling {profiler_name}",
                           unit="block", disable=not progress, dynamic_ncols=True)
        try:
            lut.save(out)
            if processes <= 0:
                with in_process_settings(profiler):  # restored afterwards: this process goes on (calibration, training)
                    for d in todo:
                        bar.set_postfix_str(d.key, refresh=False)
                        m, attempts = measure_stable(profiler, d.build(), d.input_shape, cv_threshold, retries)
                        remeasured += attempts > 1
                        keep(d.key, m, attempts, 1)
                        bar.update(1)
            else:
                from hwnas.measuring.isolate import measure_isolated

                for pass_no in range(1, passes + 1):
                    keys = [d.key for d in todo if lut.entries.get(d.key, {}).get("passes", 0) < pass_no]
                    if pass_no % 2 == 0:
                        keys.reverse()

                    def on_result(i: int, m: Measurement, _p: int, keys=keys, pass_no=pass_no) -> None:
                        keep(keys[i], m, pass_no, pass_no)
                        bar.update(1)

                    bar.set_postfix_str(f"pass {pass_no}/{passes}", refresh=False)
                    measure_isolated(profiler_name, options, "layer", keys, passes=1,
                                     chunk=chunk if pass_no % 2 else max(1, chunk - chunk // 3), on_result=on_result)
                # an entry still noisy after every pass, or whose passes disagree, gets one more isolated measurement
                tolerance = agreement_tolerance(options)
                noisy = [d.key for d in todo if lut.entries[d.key].get("robust_cv", 0.0) > cv_threshold
                         or (passes >= 2 and not agreeing(pass_medians.get(d.key, []), tolerance))]
                if noisy and retries > 0:
                    bar.total += len(noisy)
                    bar.set_postfix_str(f"re-measuring {len(noisy)} noisy", refresh=False)

                    def on_retry(i: int, m: Measurement, _p: int) -> None:
                        keep(noisy[i], m, passes + 1, passes)
                        entry = lut.entries[noisy[i]]  # recorded whichever measurement was kept
                        entry["isolated_retries"] = entry.get("isolated_retries", 0) + 1
                        bar.update(1)

                    measure_isolated(profiler_name, options, "layer", noisy, passes=1, chunk=chunk, on_result=on_retry)
                remeasured = sum(1 for d in descs if lut.entries[d.key].get("attempts", 1) > 1)
        finally:
            bar.close()
            lut.save(out)  # also on Ctrl-C: everything measured so far is kept
        calibrated = calibrated_now = False
        done = lut.calibration or {}
        if calibrate and done.get("complete") and done.get("seed") == seed and len(done.get("data", [])) >= calib_archs:
            calibrated = True  # nothing changed since the last calibration
        elif calibrate:
            from hwnas.measuring.calibrate import calibrate_lut

            calibrate_lut(lut, profiler_name, options, n_archs=calib_archs, seed=seed, resolutions=resolutions,
                          progress=progress, processes=processes)
            calibrated = calibrated_now = True
            lut.reference = None  # measured again below, in the same state of the device as the calibration
        if (calibrate if reference is None else reference) and lut.reference is None:
            from hwnas.measuring.drift import REFERENCE_NETS, REFERENCE_PROCESSES, record_reference

            if progress:
                print(f"recording the drift reference: {REFERENCE_NETS} networks x {REFERENCE_PROCESSES} fresh "
                      f"processes (more while two disagree)", file=sys.stderr)
            record_reference(lut, options, seed=seed)
            lut.save(out)
    if todo or calibrated_now:  # something was measured now: judge it (a build that only resumed keeps its record)
        record_noise(lut, [d.key for d in todo], sampler.result() if sampler is not None else None, calibrated_now)
        lut.save(out)
    return LutBuildResult(out, len(lut.entries), len(descs) * passes - resumed, resumed, remeasured,
                          time.perf_counter() - start, calibrated, lut.calibration or None,
                          lut.settings.get("noise"))
