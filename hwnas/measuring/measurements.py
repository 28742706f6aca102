"""Timings the user already has: a LUT fitted from a donor LUT and whole-network latencies measured by any tool
on a device hwnas cannot reach (LiteRT's ``benchmark_model``, a phone app, a vendor profiler), and the other
direction, the networks worth measuring there (``--suggest``).

The file is a CSV with a header naming ``arch`` and ``ms`` (other columns are kept out of the fit): ``arch`` an
arch file's path (relative to the CSV), an inline arch JSON object, or the kind's text form (a NAS-Bench-201
string for a cell space, a DARTS ``Genotype(...)``); ``ms`` a finite positive latency in milliseconds. A
network listed twice counts once, at the median of its rows. The fit, its checks and its provenance are the
transfer's (:func:`hwnas.measuring.transfer.write_transfer_lut`); the LUT records the file and its digest
as where its networks' timings came from.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.latency.lut import LUT, MAX_MS
from hwnas.measuring.transfer import POOL, TransferError, TransferResult, check_donor, write_transfer_lut
from hwnas.measuring.transfer_fit import Design, choose_networks, fit_transfer, space_extremes
from hwnas.spaces.base import ArchError

MAX_ROWS = 100_000
MIN_NETWORKS = 3  # fewer cannot give a leave-one-out error
MAX_REPEAT_SPREAD = 10.0  # a network's rows more than 10x apart are two different things (a unit, a network), not noise


class MeasurementsError(TransferError):
    """A measurements file that cannot be read or fitted; the message names the row."""


def read_measurements(path: str | Path, space: Any) -> tuple[list[Any], np.ndarray, str]:
    """The distinct archs of the file, their latencies (ms; the median of repeated rows) and the file's digest."""
    path = Path(path)
    from hwnas.core.jsonio import path_problem

    problem = path_problem(path, "a measurements file", "a CSV with a header 'arch,ms'")
    if problem:  # a directory, /dev/zero, a FIFO, a dangling link: said as such, not "does not exist"
        raise MeasurementsError(problem)
    if not path.is_file():
        raise MeasurementsError(f"measurements file {str(path)!r} " +
                                ("is a directory" if path.is_dir() else "does not exist") +
                                "; give a CSV with a header 'arch,ms'")
    raw = path.read_bytes()
    if len(raw) > 64 * 2**20:
        raise MeasurementsError(f"{path}: {len(raw) / 2**20:.0f} MiB; a measurements CSV of at most 64 MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MeasurementsError(f"{path}: not UTF-8 text (byte {e.start}); expected a CSV with a header 'arch,ms'") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "arch" not in header or "ms" not in header:
        raise MeasurementsError(f"{path}: the header must name the columns 'arch' and 'ms' (got {header}); one "
                                f"network a row: arch (an arch file, inline JSON, or a NAS-Bench-201 string), ms")
    reader.fieldnames = header
    by_id: dict[str, tuple[Any, list[float]]] = {}
    rows_of: dict[str, list[int]] = {}
    for n, row in enumerate(reader, start=2):  # row 1 is the header
        if n - 1 > MAX_ROWS:
            raise MeasurementsError(f"{path}: more than {MAX_ROWS:,} rows")
        where = f"{path} row {n}"
        arch = _arch(space, (row.get("arch") or "").strip(), path.parent, where)
        ms_text = (row.get("ms") or "").strip()
        try:
            ms = float(ms_text)
        except ValueError:
            raise MeasurementsError(f"{where}: ms {ms_text!r} is not a number; give the latency in milliseconds") from None
        if not math.isfinite(ms) or ms <= 0 or ms > MAX_MS:
            raise MeasurementsError(f"{where}: ms {ms_text} must be a finite latency above 0 and at most {MAX_MS:g} "
                                    f"(milliseconds)")
        by_id.setdefault(arch.id, (arch, []))[1].append(ms)
        rows_of.setdefault(arch.id, []).append(n)
        seen = by_id[arch.id][1]
        if max(seen) > MAX_REPEAT_SPREAD * min(seen):
            lo, hi = seen.index(min(seen)), seen.index(max(seen))
            raise MeasurementsError(
                f"{path} rows {rows_of[arch.id][lo]} and {rows_of[arch.id][hi]} time the same network {arch.id} at "
                f"{min(seen):g} and {max(seen):g} ms ({max(seen) / min(seen):.3g}x apart): a network's repeated rows "
                f"count at their median, and these cannot both be right (another unit? another network?); fix or "
                f"remove the wrong one")
    if len(by_id) < MIN_NETWORKS:
        raise MeasurementsError(f"{path}: {len(by_id)} distinct network(s); a fit needs at least {MIN_NETWORKS} "
                                f"(20 give about the fidelity of a full LUT: hwnas profile --transfer-from DONOR "
                                f"--suggest 20 --out list.csv lists good ones)")
    archs = [a for a, _ in by_id.values()]
    ms = np.array([statistics.median(v) for _, v in by_id.values()])
    return archs, ms, hashlib.sha256(raw).hexdigest()[:16]


def _arch(space: Any, cell: str, base: Path, where: str) -> Any:
    if not cell:
        raise MeasurementsError(f"{where}: the arch column is empty")
    try:
        if cell.startswith("{"):
            try:
                data = json.loads(cell)
            except json.JSONDecodeError as e:
                raise MeasurementsError(f"{where}: the inline arch is not JSON ({e.msg})") from None
            return space.arch_from_dict(data, source=where)
        if cell.endswith(".json"):
            p = Path(cell) if Path(cell).is_absolute() else base / cell
            if not p.is_file():
                raise MeasurementsError(f"{where}: arch file {cell!r} does not exist (paths are relative to the CSV)")
            return space.load_arch(p)
        from_text = getattr(space, "arch_from_text", None)
        if from_text is None:
            raise MeasurementsError(f"{where}: {cell[:60]!r} is neither an arch file (.json) nor inline JSON, and a "
                                    f"{space.kind} space has no text form for archs")
        return from_text(cell, source=where)
    except ArchError as e:
        raise MeasurementsError(str(e)) from None


def transfer_from_measurements(donor_path: str | Path, measurements: str | Path, out: str | Path, *,
                               profiler_name: str | None = None, space: Any = None, seed: int = 0,
                               command: str | None = None, force: bool = False) -> TransferResult:
    """Write at ``out`` a LUT of the device the measurements came from, fitted from the donor and them."""
    start = time.perf_counter()
    out, donor_path, measurements = Path(out), Path(donor_path), Path(measurements)
    if out.is_dir():
        raise TransferError(f"--out {out} is a directory; give the LUT's file path, e.g. {out / 'my-lut.json'}")
    if out.resolve() == donor_path.resolve():
        raise TransferError(f"--out {out} is the donor itself; write the LUT to another file")
    if out.exists() and not force:
        raise TransferError(f"--out {out} exists; a LUT from measurements is fitted in seconds: give another file, "
                            f"or --force to replace it")
    donor = LUT.load(donor_path)
    space = space or donor.search_space()
    archs, y, digest = read_measurements(measurements, space)
    resolutions = sorted({a.resolution for a in archs})
    fingerprint = {"device": "measured elsewhere", "measurements": str(measurements), "measurements_sha256": digest}
    # the donor's device kind stands in for the measured device's (hwnas cannot look at it): the fit judges
    keys = check_donor(donor, donor_path, space, resolutions, profiler_name or donor.profiler, donor.fingerprint)
    design = Design(donor, space, keys)
    C, io_, nb = design.counts(archs)
    fit = fit_transfer(design, C, io_, nb, y, np.zeros(len(keys)), np.zeros(len(keys)))
    rows = {a.id: {"arch_id": a.id, "arch": a.to_dict(), "measured": {"median_ms": float(m), "source": "measurements"}}
            for a, m in zip(archs, y)}
    lut = LUT(profiler=profiler_name or donor.profiler, settings={
        "transfer": f"fitted from {donor_path.name} and {len(archs)} networks measured elsewhere ({measurements.name})",
        "isolation": "as the user's tool measured"}, fingerprint=fingerprint, space=space.to_dict(),
        command=command or " ".join(sys.argv), path=out)
    lut.reference = None  # no drift reference: hwnas cannot run networks on that device
    return write_transfer_lut(lut, donor, donor_path, design, archs, rows, {}, fit, y, seed=seed, processes=0,
                              resolutions=resolutions, time_budget_s=None,
                              device_s={"networks": 0.0, "reference": 0.0, "blocks": 0.0, "total": 0.0}, out=out,
                              measured_now=0, resumed=0, start=start,
                              source={"file": str(measurements), "sha256": digest, "networks": len(archs)})


def suggest_networks(donor_path: str | Path, n: int, out: str | Path, *, space: Any = None, seed: int = 0,
                     resolutions: Sequence[int] | None = None, force: bool = False) -> list[Any]:
    """The ``n`` networks a transfer from the donor learns most from (spanning the space's latency range and
    its block types, as ``--networks`` chooses them), written as a CSV ``arch,ms`` with ``ms`` empty for the
    user to fill on the device; the archs in the kind's text form where it has one, else inline JSON. An existing
    ``out`` (the list the user may have filled in already) is replaced only with ``force``."""
    from hwnas.core.files import atomic_write_text
    from hwnas.measuring.sampling import sample_archs

    out = Path(out)
    if out.exists() and not force:
        raise TransferError(f"--out {out} exists (a list you may have filled in with your timings); give another "
                            f"file, or --force to replace it")
    donor = LUT.load(donor_path)
    space = space or donor.search_space()
    resolutions = tuple(resolutions) if resolutions else tuple(space.resolutions)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise TransferError(f"--suggest must be a whole number from 1 to 10000, got {n!r}")
    keys = check_donor(donor, donor_path, space, resolutions, donor.profiler, donor.fingerprint)
    design = Design(donor, space, keys)
    pool = sample_archs(space, max(POOL, 3 * n), seed, resolutions, extremes=False)
    chosen = choose_networks(design, pool, space_extremes(space, resolutions), n)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", "ms"])
    for a in chosen:
        text = getattr(a, "nb201", None) or getattr(a, "genotype", None) or a.to_json()
        w.writerow([text, ""])
    atomic_write_text(Path(out), buf.getvalue())
    return chosen
