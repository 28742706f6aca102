"""Few-shot latency transfer: a LUT for a new device from a LUT of another one and N whole networks measured here.

Building a LUT costs every block of the space timed in fresh processes plus tens of whole networks (demo: ~4.5 min,
mbv3 on torch-cpu: 22 min on 2 cores, far longer through an agent on a slow board). A donor LUT already knows
which blocks cost more than which; what changes between devices is mostly *how much*. This module chooses the
donor (``donor_closeness``), measures the chosen networks (and, within ``--device-time``, the blocks the fit is
least sure of), resumes, and writes the LUT; the model and its fit are :mod:`hwnas.measuring.transfer_fit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hwnas.spaces.blocks import LayerDesc
from hwnas.core.errors import InputError
from hwnas.latency.predict import FEATURES
from hwnas.measuring.transfer_fit import (MODEL, RECALIBRATED, Design, ImplausibleFit, TransferFit, block_uncertainty,
                                          choose_networks, feature_rows, fit_transfer, space_extremes,
                                          transfer_model)

POOL = 600               # candidate networks the N are chosen from
MAX_NETWORKS = 200        # beyond this a transfer times more than a full build of demo/mbv3 does


class TransferError(InputError):
    """A donor LUT that cannot be transferred from (another space, a GPU for a CPU, missing blocks), or a
    transfer output that would overwrite a LUT built otherwise; the message says what to do."""


def device_kind(fingerprint: dict[str, Any]) -> str:
    """``gpu`` or ``cpu``: a GPU's block costs (launch-bound) do not carry over to a CPU, nor back."""
    return "gpu" if fingerprint.get("gpu") or str(fingerprint.get("device", "")).startswith("cuda") else "cpu"


def donor_closeness(donor_fp: dict[str, Any], here: dict[str, Any]) -> tuple[int, float, int, int]:
    """How alike a donor's device is to this one (larger: closer), to choose among several donors.

    In order: the same kind (CPU or GPU) and machine (x86_64, aarch64); the share of CPU feature flags in common
    (ONNX Runtime and torch pick kernels by ISA, so AVX-512 or VNNI change *which* blocks are expensive, not only
    how fast everything is: what a per-type fit must otherwise learn from its few networks); the same CPU model;
    the same runtime versions.
    """
    same_kind = int(device_kind(donor_fp) == device_kind(here) and donor_fp.get("machine") == here.get("machine"))
    a, b = set(str(donor_fp.get("cpu_flags") or "").split()), set(str(here.get("cpu_flags") or "").split())
    flags = round(len(a & b) / len(a | b), 6) if a | b else 0.0
    same_model = int(donor_fp.get("cpu_model") == here.get("cpu_model"))
    same_runtime = sum(donor_fp.get(k) == here.get(k) for k in ("onnxruntime", "torch"))
    return same_kind, flags, same_model, same_runtime


PROGRESS_SUFFIX = ".transfer-progress.json"
REFINE_BATCH = 8   # blocks measured between refits while refining


def check_donor(donor, donor_path, space, resolutions: Sequence[int], profiler_name: str, here: dict) -> list[str]:
    """The donor's block keys for ``space`` at ``resolutions``, or TransferError saying what to do instead."""
    from hwnas.latency.predict import covered_resolutions, fill_command

    if donor.space != space.to_dict():
        d = donor.space
        raise TransferError(
            f"donor {donor_path} is a LUT of space {d.get('name')!r} (kind {d.get('kind', 'mbv3')}), this transfer is "
            f"for space {space.name!r}: give a donor LUT of that space, or leave out --space/--space-file (the "
            f"transfer then uses the donor's space); a space that differs by a few blocks (another num_classes): "
            f"transfer the donor's space, then derive from that LUT (hwnas profile --lut LUT --space-file SPACE "
            f"--out NEW_LUT: only the blocks it lacks are measured)")
    dk, hk = device_kind(donor.fingerprint), device_kind(here)
    if dk != hk:
        raise TransferError(
            f"donor {donor_path} was measured on a {dk.upper()} ({donor.label}) and {profiler_name} measures on a "
            f"{hk.upper()}: block costs do not carry over between them; give a donor LUT of a {hk.upper()} profiler, "
            f"or build this LUT in full: hwnas profile --profiler {profiler_name} --space {space.name} --out OUT")
    keys = sorted({x.key for x in space.all_layers(resolutions)})
    missing = donor.missing(keys)
    if missing:
        covered = covered_resolutions(donor, space)
        alt = (f", or transfer only the resolutions it covers: --resolutions {' '.join(map(str, covered))}"
               if covered else "")
        raise TransferError(
            f"donor {donor_path} lacks {len(missing)} of the {len(keys)} blocks of space {space.name!r} at resolutions "
            f"{list(resolutions)} (e.g. {missing[0]}); fill the donor first: {fill_command(donor, space, resolutions)}"
            f"{alt}")
    return keys


@dataclass(frozen=True)
class TransferResult:
    """What a transfer did: the LUT written, how many networks and blocks it measured now or reused, the fit's
    leave-one-out error, and the device time spent (networks, drift reference, refinement)."""

    path: Any
    donor: str
    networks: int
    measured_now: int
    resumed: int
    blocks_measured: int
    loo_mape_pct: float
    loo_within_10_pct: float
    device_seconds: dict[str, float]
    seconds: float
    fit: dict[str, Any]
    donor_transferred_from: str | None = None  # the donor is itself a transfer LUT: its own donor
    measurements: str | None = None  # the networks' timings came from this file (measured elsewhere)

    def lines(self) -> list[str]:
        """What ``hwnas profile --transfer-from`` prints on stdout."""
        loo = (f"leave-one-out MAPE {self.loo_mape_pct:.1f} %, {self.loo_within_10_pct:.0f} % of networks within "
               f"+-10 %" if self.networks > 1 else "no leave-one-out error with one network")
        if self.measurements:
            return [f"LUT {self.path}: transferred from {self.donor} with {self.networks} networks timed elsewhere "
                    f"({self.measurements}); {loo}; the device takes {self.fit['rho']:.3f}x the donor's time "
                    f"overall{self._model()}"]
        d = self.device_seconds
        blocks = f", {self.blocks_measured} blocks measured individually" if self.blocks_measured else ""
        return [f"LUT {self.path}: transferred from {self.donor} with {self.networks} networks measured here "
                f"({self.measured_now} now, {self.resumed} resumed){blocks}; {loo}; device time {d['total']:.0f} s "
                f"(networks {d['networks']:.0f} s, drift reference {d['reference']:.0f} s, blocks {d['blocks']:.0f} s);"
                f" this device takes {self.fit['rho']:.3f}x the donor's time overall{self._model()}"]

    def _model(self) -> str:
        """Which of the two fits was written (by leave-one-out error), for the line; nothing for older fits."""
        if self.fit.get("model") == RECALIBRATED:
            return f"; model: the donor's blocks recalibrated ({self.fit.get('calibration_model')})"
        return "; model: per-type ridge" if self.fit.get("model") == MODEL else ""

    def warning(self) -> str | None:
        """For stderr, what to do: when the fit predicts the networks it did not see poorly, and when the donor
        was itself transferred (a fit fitted on a fit)."""
        from hwnas.measuring.calibrate import POOR_FIT_PCT

        chained = (f"WARNING: the donor {self.donor} is itself a transfer (from {self.donor_transferred_from}): "
                   f"errors of both fits add up; a donor built in full is a better prior"
                   if self.donor_transferred_from else None)
        if self.networks <= 1 or self.loo_mape_pct <= POOR_FIT_PCT:
            return chained
        more = (f"time more networks there (hwnas profile --transfer-from {self.donor} --suggest {2 * self.networks} "
                f"lists good ones), or a donor closer to that device" if self.measurements else
                f"measure more networks (--networks {2 * self.networks}, the measured ones are kept), add --device-time "
                f"to measure blocks, or build the LUT in full (drop --transfer-from)")
        poor = (f"WARNING: the transfer predicts networks it did not see only within {self.loo_mape_pct:.1f} % "
                f"(above {POOR_FIT_PCT:.0f} %): {more}")
        return f"{chained}\n{poor}" if chained else poor



def _progress_path(out) -> Any:
    from pathlib import Path

    out = Path(out)
    return out.with_name(out.name + PROGRESS_SUFFIX)


def _same_device(state: dict, profiler_name: str, fp: dict, space, settings: dict) -> bool:
    from hwnas.latency.lut import fingerprint_diff

    return (state.get("profiler") == profiler_name and not fingerprint_diff(state.get("fingerprint", {}), fp)
            and state.get("space") == space.to_dict() and state.get("policy") == settings.get("policy"))


def _resume_state(out, progress_path, profiler_name: str, fp: dict, space, settings: dict, force: bool,
                  log) -> dict[str, Any]:
    """Measurements a killed (or smaller, earlier) transfer to ``out`` made on this device, to reuse: from the
    progress file, else from a transfer LUT already at ``out``. A LUT built otherwise at ``out`` is refused."""
    from hwnas.core import jsonio
    from hwnas.latency.lut import LUT, LUTError

    state: dict[str, Any] = {"rows": {}, "blocks": {}, "reference": None, "reference_seconds": 0.0}
    if force:
        return state
    if out.exists():
        try:
            old = LUT.load(out)
        except LUTError as e:
            raise LUTError(f"{e}\n(--force starts a new transfer at {out}, discarding the file)") from None
        if not old.transfer:
            raise TransferError(f"{out} is a LUT built by measuring every block; a transfer would replace it: choose "
                                f"another --out, or --force to replace it")
        if _same_device({"profiler": old.profiler, "fingerprint": old.fingerprint, "space": old.space,
                         "policy": old.settings.get("policy")}, profiler_name, fp, space, settings):
            for r in (old.calibration or {}).get("data", []):
                state["rows"][r["arch_id"]] = {k: r[k] for k in ("arch_id", "arch", "measured", "seconds") if k in r}
            for k in old.transfer.get("measured_blocks", []):
                state["blocks"][k] = old.entries[k]
            state["reference"] = old.reference
            state["reference_seconds"] = float(old.transfer.get("device_seconds", {}).get("reference", 0.0))
        else:
            raise TransferError(f"{out} is a transfer LUT of another device, profiler or space; choose another --out, "
                                f"or --force to replace it")
    if progress_path.is_dir():
        raise TransferError(f"{progress_path} (where this transfer saves its measurements) is a directory; remove it "
                            f"or choose another --out")
    if progress_path.exists():
        try:
            saved = jsonio.loads_file(progress_path, TransferError, "a transfer's progress file")
        except TransferError as e:
            saved = None
            log(f"discarding {progress_path}: {e}; its measurements are taken again")
        if isinstance(saved, dict) and _same_device(saved, profiler_name, fp, space, settings):
            rows, blocks, reference, dropped = _usable_progress(saved, space)
            if dropped:
                log(f"discarding {dropped} damaged measurement(s) in {progress_path} (edited or corrupt); they are "
                    f"taken again")
            state["rows"].update(rows)
            state["blocks"].update(blocks)
            if reference:
                state["reference"], state["reference_seconds"] = reference
        elif saved is not None:
            log(f"discarding {progress_path}: it holds measurements of another device, profiler, space or timing "
                f"policy")
    return state


def _seconds(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 else 0.0


def _usable_progress(saved: dict, space) -> tuple[dict, dict, tuple | None, int]:
    """What of a progress file can be reused: rows (whole networks) whose arch is of ``space`` with its id and a
    positive finite median, blocks that pass a LUT entry's checks, a well-formed drift reference; and how many
    were dropped. A damaged row must not reach the fit (a median of -1 made a LUT 57 % off, a missing one
    an internal error after the drift reference was measured)."""
    from hwnas.latency.lut import LUTError, _check_entry, _check_reference

    rows, blocks, dropped = {}, {}, 0
    saved_rows = saved.get("rows") if isinstance(saved.get("rows"), dict) else {}
    for key, r in saved_rows.items():
        try:
            m = r["measured"]
            med = m["median_ms"]
            if not (isinstance(med, (int, float)) and not isinstance(med, bool) and math.isfinite(med) and med > 0):
                raise ValueError(med)
            if space.arch_from_dict(r["arch"], source="progress").id != key or r.get("arch_id") != key:
                raise ValueError(key)
            rows[key] = {"arch_id": key, "arch": r["arch"], "measured": m, "seconds": _seconds(r.get("seconds"))}
        except (KeyError, TypeError, ValueError, AttributeError, InputError):  # damaged: measured again
            dropped += 1
    saved_blocks = saved.get("blocks") if isinstance(saved.get("blocks"), dict) else {}
    for key, e in saved_blocks.items():
        try:
            _check_entry(key, e, "progress")
            blocks[key] = {**e, "seconds": _seconds(e.get("seconds"))}
        except LUTError:
            dropped += 1
    dropped += (not isinstance(saved.get("rows", {}), dict)) + (not isinstance(saved.get("blocks", {}), dict))
    reference = None
    if saved.get("reference"):
        try:
            _check_reference(saved["reference"], "progress")
            reference = (saved["reference"], _seconds(saved.get("reference_seconds")))
        except LUTError:
            dropped += 1
    return rows, blocks, reference, dropped


def transfer_lut(donor_path, profiler_name: str | None, out, *, space=None, networks: int = 20,
                 resolutions: Sequence[int] | None = None, profiler_options: dict[str, Any] | None = None,
                 processes: int = 2, seed: int = 0, time_budget_s: float | None = None,
                 max_refine_blocks: int | None = None, reference: bool = True, force: bool = False,
                 command: str | None = None, progress: bool = True, log=None) -> TransferResult:
    """Write at ``out`` a LUT of ``profiler_name`` on this device fitted from ``donor_path`` and ``networks``
    whole networks measured here (``processes`` fresh processes each, lowest median; 0: in this process).

    ``time_budget_s``: the device time of the whole transfer; what the networks and the drift reference leave
    is spent measuring the blocks the fit is least sure of (uncertainty x how often networks hold them), refitting
    after every few. Measurements are saved as they come (a progress file beside ``out``, removed at the end), so
    a killed transfer run again with the same command measures only what it had not.
    """
    import sys
    import time
    from pathlib import Path

    from hwnas.core.progress import progress as progress_bar

    from hwnas.core import jsonio
    from hwnas.measuring.sampling import sample_archs
    from hwnas.core.files import atomic_write_text
    from hwnas.latency.lut import LUT
    from hwnas.measuring.measure import arch_measurer, available_profiler, in_process_settings, profiler_options as popts
    from hwnas.measuring.profiling import entry_from

    log = log or (lambda s: print(s, file=sys.stderr))
    start = time.perf_counter()
    out, donor_path = Path(out), Path(donor_path)
    if out.is_dir():
        raise TransferError(f"--out {out} is a directory; give the LUT's file path, e.g. {out / 'my-lut.json'}")
    if out.resolve() == donor_path.resolve():
        raise TransferError(f"--out {out} is the donor itself; write the transfer LUT to another file")
    donor = LUT.load(donor_path)
    space = space or donor.search_space()
    profiler_name = profiler_name or donor.profiler
    resolutions = tuple(resolutions) if resolutions else tuple(space.resolutions)
    options = dict(profiler_options if profiler_options is not None else popts(1))
    want = options.get("precision", "fp32")
    if donor.precision != want:  # a LUT never mixes precisions: int8 block costs are no prior for fp32 ones
        from hwnas.measuring.precision import check_same

        check_same(f"donor {donor_path}", donor.precision, "this transfer", want,
                   f"add --precision {donor.precision} to transfer at the donor's precision (ort-cpu, ort-mobile), "
                   f"or give a donor LUT built at {want}" if donor.precision != "fp32" else
                   f"give a donor LUT built at {want} (hwnas profile --precision {want}), or drop --precision")
    profiler = available_profiler(profiler_name, options)
    fp = profiler.fingerprint()
    keys = check_donor(donor, donor_path, space, resolutions, profiler_name, fp)
    settings = dict(profiler.settings()) if hasattr(profiler, "settings") else {}
    if isinstance(networks, bool) or not isinstance(networks, int) or not 1 <= networks <= MAX_NETWORKS:
        raise TransferError(f"--networks must be a whole number from 1 to {MAX_NETWORKS}, got {networks!r} (20 "
                            f"networks: about a minute of device time for demo/mbv3; beyond {MAX_NETWORKS} a full "
                            f"build costs less: drop --transfer-from)")
    ppath = _progress_path(out)
    state = _resume_state(out, ppath, profiler_name, fp, space, settings, force, log)

    def save_progress() -> None:
        atomic_write_text(ppath, jsonio.dumps({"format": "hwnas-transfer-progress", "profiler": profiler_name,
                                               "fingerprint": fp, "space": space.to_dict(),
                                               "policy": settings.get("policy"), "donor": str(donor_path),
                                               **state}, indent=1) + "\n")

    design = Design(donor, space, keys)
    pool = sample_archs(space, POOL, seed, resolutions, extremes=False)
    chosen = choose_networks(design, pool, space_extremes(space, resolutions), networks)
    rows: dict[str, dict] = state["rows"]
    todo = [a for a in chosen if a.id not in rows]
    resumed = len(chosen) - len(todo)
    passes = max(1, processes)
    if resumed:
        log(f"transfer: {resumed} of {len(chosen)} networks already measured on this device; measuring "
            f"{len(todo)}")
    bar = progress_bar(desc=f"transfer {profiler_name}: measuring {len(todo)} networks x {passes} process(es)",
                       unit="net",
                       total=len(todo) * passes, disable=not progress or not todo, dynamic_ncols=True)
    measure = arch_measurer(profiler_name, options, processes, bar)
    step = 10 if processes > 0 else 1
    try:
        for i in range(0, len(todo), step):
            batch = todo[i:i + step]
            t0 = time.perf_counter()
            got = measure(batch)
            per = (time.perf_counter() - t0) / len(batch)
            for a, m in zip(batch, got):
                rows[a.id] = {"arch_id": a.id, "arch": a.to_dict(), "measured": m.to_dict(), "seconds": round(per, 3)}
            save_progress()
    finally:
        bar.close()

    lut = LUT(profiler=profiler_name, settings=settings, fingerprint=fp, space=space.to_dict(),
              command=command or " ".join(sys.argv), path=out)
    if reference and not state.get("reference"):
        from hwnas.measuring.drift import record_reference

        log("recording the drift reference: 3 networks in fresh processes (as every LUT)")
        t0 = time.perf_counter()
        state["reference"] = record_reference(lut, options, seed=seed)
        state["reference_seconds"] = round(time.perf_counter() - t0, 3)
        save_progress()
    lut.reference = state.get("reference") if reference else None

    C, io, nb = design.counts(chosen)
    y = np.array([rows[a.id]["measured"]["median_ms"] for a in chosen])
    index = design.index
    blocks: dict[str, dict] = state["blocks"]

    def current_fit() -> tuple[TransferFit, np.ndarray, np.ndarray]:
        mask, mvals = np.zeros(len(keys)), np.zeros(len(keys))
        for k, e in blocks.items():
            if k in index:
                mask[index[k]], mvals[index[k]] = 1.0, e["median_ms"]
        return fit_transfer(design, C, io, nb, y, mask, mvals), mask, mvals

    net_s = float(sum(rows[a.id].get("seconds", 0.0) for a in chosen))
    fit, mask, mvals = current_fit()
    refined_now = 0
    if time_budget_s is not None:
        left = time_budget_s - net_s - float(state.get("reference_seconds", 0.0)) - sum(
            float(e.get("seconds", 0.0)) for e in blocks.values())
        pool_C, _, _ = design.counts(pool[:200])
        freq = pool_C.mean(axis=0)
        per_block = None
        rbar = progress_bar(desc=f"refining: blocks the transfer is least sure of ({left:.0f} s left)", unit="block",
                            disable=not progress or left <= 0, dynamic_ncols=True)
        try:
            while left > 0:
                cap = None if max_refine_blocks is None else max_refine_blocks - refined_now
                if cap is not None and cap <= 0:
                    break
                importance = block_uncertainty(design, fit) * freq * (1.0 - mask)
                order = [keys[j] for j in np.argsort(-importance) if importance[j] > 0]
                n_b = min(REFINE_BATCH, len(order), cap if cap is not None else REFINE_BATCH)
                if per_block is not None:
                    n_b = min(n_b, int(left // per_block))
                if n_b <= 0:
                    break
                batch = order[:n_b]
                t0 = time.perf_counter()
                ms = _measure_blocks(profiler_name, options, processes, batch, profiler, in_process_settings)
                spent = time.perf_counter() - t0
                per_block = spent / n_b
                for k, m in zip(batch, ms):
                    blocks[k] = {**entry_from(m, passes), "passes": passes, "measured": True,
                                 "seconds": round(per_block, 3)}
                refined_now += n_b
                left -= spent
                rbar.update(n_b)
                rbar.set_description(f"refining: blocks the transfer is least sure of ({max(0.0, left):.0f} s left)")
                save_progress()
                fit, mask, mvals = current_fit()
        finally:
            rbar.close()
        if refined_now == 0 and left <= 0:
            log(f"transfer: the {len(chosen)} networks and the drift reference took {time_budget_s - left:.0f} s of "
                f"--device-time {time_budget_s:.0f} s; no blocks refined")

    device_s = {"networks": round(net_s, 1), "reference": round(float(state.get("reference_seconds", 0.0)), 1),
                "blocks": round(sum(float(e.get("seconds", 0.0)) for e in blocks.values()), 1)}
    device_s["total"] = round(sum(device_s.values()), 1)
    lut.settings = {**settings, "isolation": (f"{processes} fresh process(es) per network, lowest median kept"
                                              if processes else "in one process"),
                    "transfer": f"fitted from {donor_path.name} and {len(chosen)} networks measured here"}
    result = write_transfer_lut(lut, donor, donor_path, design, chosen, rows, blocks, fit, y, seed=seed,
                                processes=processes, resolutions=resolutions, time_budget_s=time_budget_s,
                                device_s=device_s, out=out, measured_now=len(todo), resumed=resumed, start=start)
    try:
        ppath.unlink()
    except FileNotFoundError:
        pass
    return result


def write_transfer_lut(lut, donor, donor_path, design: Design, chosen: Sequence[Any], rows: dict[str, dict],
                       blocks: dict[str, dict], fit: TransferFit, y: np.ndarray, *, seed: int, processes: int,
                       resolutions: Sequence[int], time_budget_s: float | None, device_s: dict[str, float], out,
                       measured_now: int, resumed: int, start: float,
                       source: dict[str, Any] | None = None) -> TransferResult:
    """The transfer's model (the per-type fit, or the donor's blocks recalibrated, by leave-one-out error) written
    into ``lut`` at ``out`` with its provenance: what networks measured here (``rows``) or given by the user
    (``source``: the measurements file) it was fitted to."""
    import json
    import time

    from hwnas.core import jsonio
    from hwnas.latency.lut import LUT, LUTError, content_digest, content_table, now_iso

    keys = design.keys
    C, io, nb = design.counts(chosen)
    try:
        model = transfer_model(design, C, io, nb, y, fit, measured_blocks=bool(blocks))
    except ImplausibleFit as e:  # never written as a LUT: what the networks say is not a device
        n = len(chosen)
        again = (f"check its ms column (milliseconds, one network each, the device quiet while timing), or time "
                 f"more networks there (--suggest {2 * n} lists good ones)" if source else
                 f"measure them again on a quiet device (the same command with --force: the {n} timings kept in "
                 f"{_progress_path(out)} are the ones at fault), or more of them (--networks {2 * n}), or build the "
                 f"LUT in full (drop --transfer-from)")
        raise TransferError(f"the {n} networks {'in ' + source['file'] if source else 'measured here'} fit no "
                            f"physically plausible LUT from the donor {donor_path}: {e} (the constrained fit and the "
                            f"calibration-only refit alike); nothing was written to {out}: {again}") from None
    recal, use_recal = model.recalibration, model.recalibrated
    # -- the LUT: every block of the space, fitted (or measured), and the transfer's calibration -------------
    coef = model.coef
    if use_recal:
        for j, k in enumerate(keys):  # entries in this device's ms; the donor's spread scaled alike
            lut.entries[k] = _scaled_entry(donor.entries[k], model.block_ms[j])
        model_name = f"transfer:{recal.model}"
        loo_scores = {"transfer": round(fit.loo_mape_pct, 3) if math.isfinite(fit.loo_mape_pct) else None,
                      **recal.scores}
    else:
        sd = block_uncertainty(design, fit)
        for j, k in enumerate(keys):
            if k in blocks:
                lut.entries[k] = dict(blocks[k])
                continue
            lut.entries[k] = _scaled_entry(donor.entries[k], model.block_ms[j], sd_ms=round(float(sd[j]), 6))
        model_name = "transfer"
        loo_scores = {"transfer": round(fit.loo_mape_pct, 3) if math.isfinite(fit.loo_mape_pct) else None}
        if recal is not None:
            loo_scores.update(recal.scores)
    entry_ms = np.array([lut.entries[k]["median_ms"] for k in keys])
    F = feature_rows(entry_ms, C, io, nb)
    pred = F @ coef
    lut.calibration = {
        "model": model_name, "coef": [float(c) for c in coef], "features": list(FEATURES), "seed": seed,
        "n_archs": len(chosen), "processes": processes,
        "data": [{**rows[a.id], "features": [round(float(v), 6) for v in f]} for a, f in zip(chosen, F)],
        "loo_mape_pct": loo_scores,
        "fit_mape_pct": round(float(np.mean(np.abs(pred - y) / y) * 100), 3),
        "uncalibrated_mape_pct": round(float(np.mean(np.abs(F[:, 0] - y) / y) * 100), 3),
        "fitted": now_iso(), "complete": True}
    lut.calibration["loo_mape_pct"] = {k: v for k, v in loo_scores.items() if v is not None}
    summary = fit.summary(design)
    loo = (fit.loo_mape_pct, fit.loo_within_10_pct, fit.loo_errors_pct)
    if use_recal:
        summary = {"model": RECALIBRATED, "calibration_model": recal.model, "rho": round(recal.rho, 6),
                   "loo_mape_pct": round(recal.loo_mape_pct, 3), "loo_within_10_pct": round(recal.loo_within_10_pct, 1),
                   "fit_mape_pct": lut.calibration["fit_mape_pct"],
                   "per_type_fit": {k: v for k, v in summary.items() if k != "model"}}
        loo = (recal.loo_mape_pct, recal.loo_within_10_pct, recal.loo_errors_pct)
    lut.transfer = {
        "donor": {"path": str(donor_path), "profiler": donor.profiler, "label": _device_label(donor),
                  "cpu_model": donor.fingerprint.get("cpu_model"), "cpu_flags": donor.fingerprint.get("cpu_flags"),
                  "digest": content_digest(content_table(donor)),
                  **({"transferred_from": donor.transfer["donor"].get("path")} if donor.transfer else {})},
        "networks": len(chosen), "seed": seed, "resolutions": list(resolutions),
        "loo_mape_pct": round(loo[0], 3) if math.isfinite(loo[0]) else None,
        "loo_within_10_pct": round(loo[1], 1) if math.isfinite(loo[1]) else None,
        "loo_errors_pct": loo[2], **{k: v for k, v in summary.items() if not k.startswith("loo")},
        "measured_blocks": sorted(blocks), "time_budget_s": time_budget_s, "device_seconds": device_s,
        **({"measurements": source} if source else {}), "created": now_iso()}
    try:  # what would be written must read back, or nothing is written (a fit past the LUT's bounds)
        LUT.from_dict(json.loads(jsonio.dumps(lut.to_dict())), source=str(out))
    except LUTError as e:
        n = len(chosen)
        raise TransferError(f"the {n} networks {'in ' + source['file'] if source else 'measured here'} fit a LUT "
                            f"hwnas cannot use ({str(e).split(': ', 1)[-1].split('; the file was')[0]}); nothing was "
                            f"written to {out}: check its ms column (milliseconds, one network each)") from None
    lut.save(out)
    LUT.load(out)  # what was written reads back (the calibration predicts > 0 ms for its own networks)
    return TransferResult(out, str(donor_path), len(chosen), measured_now, resumed, len(blocks),
                          loo[0], loo[1], device_s, time.perf_counter() - start, summary,
                          donor.transfer["donor"].get("path") if donor.transfer else None,
                          source["file"] if source else None)




def _scaled_entry(donor_entry: dict[str, Any], ms: Any, **extra: Any) -> dict[str, Any]:
    """A donor block's LUT entry moved to this device's ``ms``: its spread scaled by the same ratio (one
    definition for both models' entries, so the two LUTs a transfer can write never differ in form)."""
    r = float(ms / donor_entry["median_ms"])
    return {"median_ms": round(float(ms), 6), "p10_ms": round(donor_entry["p10_ms"] * r, 6),
            "p90_ms": round(donor_entry["p90_ms"] * r, 6), "std_ms": round(donor_entry["std_ms"] * r, 6),
            "cv": donor_entry["cv"], "n": donor_entry["n"], "transferred": True, **extra}


def _device_label(lut) -> str:
    """'ort-cpu on AMD EPYC [avx2 fma]': the donor's device, distinguishable from this one by its CPU flags."""
    fp = lut.fingerprint
    flags = f" [{fp['cpu_flags']}]" if fp.get("cpu_flags") and not fp.get("gpu") else ""
    return f"{lut.profiler} on {fp.get('gpu') or fp.get('cpu_model', '?')}{flags}"


def _measure_blocks(profiler_name: str, options: dict, processes: int, keys: Sequence[str], profiler,
                    in_process_settings) -> list:
    """Blocks timed individually as a LUT build times them: ``processes`` passes of fresh processes, lowest
    median (0: in this process)."""
    if processes <= 0:
        with in_process_settings(profiler):
            return [profiler.measure(LayerDesc.from_key(k).build(), LayerDesc.from_key(k).input_shape) for k in keys]
    from hwnas.measuring.isolate import measure_isolated

    return measure_isolated(profiler_name, options, "layer", list(keys), passes=processes, chunk=len(keys))
