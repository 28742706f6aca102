"""``hwnas demo``: the whole pipeline on an embedded data set and a demo-size space.

LUT (the shipped one when its fingerprint matches this machine's profiler; else one
transferred from a shipped LUT of the same profiler and space with 20 networks measured
here, hwnas.measuring.transfer; else, or with ``full_lut``, built here) -> accuracy ->
search under a budget inside the space's latency range -> finalize with a measured verdict.
The accuracy axis is the one measured to rank the space best (docs/evaluators.md): on
``network-demo`` (the default) NASWOT from one batch, then the best candidates under the
budget trained briefly and re-ranked (``--refine``); on ``demo`` and ``cell-demo`` a
weight-sharing supernet. Every step resumes when run again.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.files import atomic_write_text
from hwnas.latency.lut import LUT, LUTError, fingerprint_diff
from hwnas.profilers._host import peak_rss_mib

SPACE = "network-demo"
DATA = "fashion-small"  # embedded Fashion-MNIST subset: archs differ by points on it (digits: by noise)
DEMO_THREADS = 1  # the demo's LUTs (shipped or built here) are one thread, pinned by the default rule
IGNORE_SHIPPED_ENV = "HWNAS_IGNORE_SHIPPED_LUTS"  # "1": as on a device with no shipped LUT to use or transfer from;
#                                                  "match": as on a device no shipped LUT matches (donors kept)


def _ignore_mode() -> str:
    """HWNAS_IGNORE_SHIPPED_LUTS: "" (unset or 0), "match" or anything else (= all)."""
    value = os.environ.get(IGNORE_SHIPPED_ENV, "").strip()
    return "" if value in ("", "0") else value


def shipped_luts_ignored() -> bool:
    """Whether HWNAS_IGNORE_SHIPPED_LUTS is set (but not to ``match``): neither a matching LUT nor a transfer
    donor is taken."""
    return _ignore_mode() not in ("", "match")


def matching_luts_ignored() -> bool:
    """Whether HWNAS_IGNORE_SHIPPED_LUTS is set at all: no shipped LUT counts as this machine's (with ``match``
    a shipped one may still be the donor of a transfer, what a newcomer whose CPU is not ours meets)."""
    return _ignore_mode() != ""


def demo_profiler_options(quick: bool) -> dict[str, Any]:
    """The demo's measuring settings for a LUT it makes: one thread, pinned by the default rule; ``quick``: the
    short timing policy of previews and tests."""
    from hwnas.measuring.measure import profiler_options
    from hwnas.profilers.base import TimingPolicy

    options = profiler_options(DEMO_THREADS)
    if quick:
        options["policy"] = TimingPolicy.quick()
    return options


BUDGET_FRACTION = 0.35  # of the way from the fastest to the largest arch's predicted latency
MARGIN = 0.10  # the search keeps the pick 10 % below the budget, clear of what one measurement can tell apart
REFINE_TOP = 6          # candidates the refine step trains (a space with no supernet): ~10 s each on 2 cores
REFINE_EVALUATOR = "proxy:naswot"  # the cheap fidelity: one batch of the data, no training
# Epochs finalize trains the pick from scratch (a space with no supernet): half the reference recipe's 12 keeps the
# demo inside 4 minutes on 2 cores (finalize --train-epochs; the accuracy it reaches is printed as measured)
FINAL_TRAIN_EPOCHS = 6
MARKER = ".hwnas-demo"  # in every --out the demo made: the only directories --force may delete


class DemoError(InputError):
    """The demo's --out is not a directory the demo may write to (or delete)."""


def prepare_out(out: Path, force: bool) -> None:
    """Use only a directory the demo made (or a new or empty one, then marked as the demo's). ``force``
    deletes it first; a directory with anyone else's files is refused, never deleted."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} is a file; the demo needs a directory: choose another --out")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        why = ("--force deletes only a directory `hwnas demo` made" if force
               else "the demo writes only into a directory it made")
        raise DemoError(f"{out} holds files that `hwnas demo` did not make (no {MARKER} file in it); {why}: "
                        f"choose another --out, or empty it yourself")
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        atomic_write_text(out / MARKER, "made by `hwnas demo`; `hwnas demo --force` deletes this directory\n")


def lut_dirs() -> list[Path]:
    """``luts/`` here first, kept relative so that messages and a transfer's recorded donor read as a user
    would type them; then the package's own (absolute: an installed package lies elsewhere)."""
    return [Path("luts"), Path(__file__).resolve().parents[2] / "luts"]


def shipped_luts(profiler_name: str, space_name: str = SPACE) -> list[Path]:
    """The shipped LUT files of this profiler and space (by name; each directory of lut_dirs() once)."""
    found: list[Path] = []
    seen: set[Path] = set()
    for d in lut_dirs():
        for f in sorted(d.glob(f"*_{profiler_name}_{space_name}.json")):
            if f.resolve() not in seen:
                seen.add(f.resolve())
                found.append(f)
    return found


def this_fingerprint(profiler_name: str) -> dict[str, Any]:
    """This machine's fingerprint under the demo's own settings (one thread, pinned), not any LUT's: a shipped
    LUT must have been built so. ProfilerUnavailable when the profiler cannot run here."""
    from hwnas.measuring.measure import available_profiler, profiler_options

    # without prepare(): pinning this process would starve the training that follows
    return available_profiler(profiler_name, profiler_options(DEMO_THREADS)).fingerprint()


def matching_lut(profiler_name: str, space_name: str = SPACE) -> tuple[Path | None, list[str]]:
    """A shipped LUT of this profiler and space whose device fingerprint matches here, and why others did not.

    With HWNAS_IGNORE_SHIPPED_LUTS=1 (or =match) none matches: what a user whose CPU is not ours meets (and
    tests it).
    """
    from hwnas.profilers import ProfilerUnavailable

    if matching_luts_ignored():
        return None, [f"shipped LUTs ignored as this machine's ({IGNORE_SHIPPED_ENV} is set)"]
    try:
        here = this_fingerprint(profiler_name)
    except ProfilerUnavailable as e:
        return None, [str(e)]
    notes: list[str] = []
    for f in shipped_luts(profiler_name, space_name):
        try:
            lut = LUT.load(f)
        except LUTError as e:
            notes.append(f"{f}: {e}")
            continue
        diff = fingerprint_diff(lut.fingerprint, here)
        if lut.precision != "fp32":  # the demo searches and judges fp32 (an int8 LUT names itself *_int8)
            notes.append(f"{f}: an {lut.precision} LUT")
            continue
        if not diff and lut.profiler == profiler_name:
            return f, notes
        notes.append(f"{f}: other device ({', '.join(sorted(diff))} differ)")
    return None, notes


TRANSFER_NETWORKS = 20  # about a minute of device time for the demo space on ort-cpu


def donor_lut(profiler_name: str, space_name: str = SPACE) -> Path | None:
    """The shipped LUT of this profiler and space, measured on another device (not itself transferred, not this
    device's), whose device is closest to this one (hwnas.measuring.transfer.donor_closeness: machine, then CPU
    flags in common):
    the donor of a transfer when none matches this machine. None with HWNAS_IGNORE_SHIPPED_LUTS set (a device
    with no shipped LUT to use or transfer from: the demo builds one block by block)."""
    from hwnas.measuring.transfer import donor_closeness
    from hwnas.profilers import ProfilerUnavailable

    if shipped_luts_ignored():
        return None
    try:
        here = this_fingerprint(profiler_name)
    except ProfilerUnavailable:
        here = {}
    best: tuple[tuple, Path] | None = None
    for f in shipped_luts(profiler_name, space_name):
        try:
            lut = LUT.load(f)
        except LUTError:
            continue
        if lut.profiler != profiler_name or lut.transfer or lut.precision != "fp32":
            continue
        if here and not fingerprint_diff(lut.fingerprint, here):
            continue  # this very device's (HWNAS_IGNORE_SHIPPED_LUTS=match): a stranger has no such LUT
        score = donor_closeness(lut.fingerprint, here)
        if best is None or score > best[0]:  # ties: the first by name
            best = (score, f)
    return None if best is None else best[1]


def accuracy_axis_line(space_name: str, evaluator: str) -> str:
    """What the demo's accuracy axis is worth, from the committed benchmark of its space (tools/bench_evaluators.py,
    docs/evaluators.md): Kendall tau of ``evaluator``'s row against archs trained from scratch, beside the
    reference's own seed-to-seed agreement and the size baselines. "" when no benchmark is found (an installed
    package without docs/)."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    rows: dict[str, dict[str, Any]] = {}
    n, supernet_epochs = None, None
    for suffix in ("_baselines", "", f"_{evaluator}"):  # later files win: the evaluator's own benchmark last
        f = docs / f"evaluators_fashion-mnist_{space_name}{suffix}.json"
        try:
            bench = jsonio.loads_file(f, InputError, "an evaluator benchmark")
        except InputError:
            continue
        rows.update({r["evaluator"]: r for r in bench.get("rows", [])})
        n = bench.get("n_archs", n)
        if any(r["evaluator"] == "supernet" for r in bench.get("rows", [])):
            supernet_epochs = (bench.get("supernet") or {}).get("epochs")
    row = next((r for name, r in rows.items() if name.split(" ")[0] == evaluator), None)
    ceiling = rows.get("train seed 0 vs 1")
    if row is None or ceiling is None:
        return ""

    def tau(r: dict[str, Any] | None, key: str = "kendall_tau") -> str:
        return "n/a" if r is None or r.get(key) is None else f"{r[key]:.2f}"

    near = (f", within 5 % latency {tau(row, 'tau_near_latency')} (MACs {tau(rows.get('MACs alone'), 'tau_near_latency')})"
            if row.get("tau_near_latency") is not None else "")
    res = rows.get("resolution alone")
    label = (f"a {supernet_epochs}-epoch supernet" if row["evaluator"] == "supernet" and supernet_epochs
             else row["evaluator"])
    return (f"accuracy axis: {label} ranked {space_name}'s {n} benchmark archs (Fashion-MNIST, trained from "
            f"scratch) at Kendall tau {tau(row)}{near}; the trainings' own seeds agree at {tau(ceiling)}; size alone: "
            f"MACs {tau(rows.get('MACs alone'))}, params {tau(rows.get('params alone'))}"
            + (f", resolution {tau(res)}" if res is not None and res.get("kendall_tau") else "")
            + " (docs/evaluators.md)")


def begun_quick(lut_path: Path) -> bool | None:
    """Whether the demo's LUT at ``lut_path`` was begun with ``--quick`` (its timing policy); None: no such
    file, or one ``build_lut`` will refuse with its own clear error."""
    from dataclasses import asdict

    from hwnas.profilers.base import TimingPolicy

    try:
        lut = LUT.load(lut_path) if lut_path.exists() else None
    except LUTError:
        return None
    return None if lut is None else lut.settings.get("policy") == asdict(TimingPolicy.quick())


def run_demo(out: str | Path = "runs/demo", profiler: str = "ort-cpu", epochs: int = 10, population: int = 24,
             generations: int = 10, seed: int = 0, force: bool = False, command: str | None = None,
             log: Callable[[str], None] = print, quick: bool = False, space_name: str = SPACE,
             data: str = DATA, full_lut: bool = False, refine_top: int = REFINE_TOP,
             refine_epochs: int = 2) -> dict[str, Any]:
    """The whole pipeline; ``quick`` times a LUT built here with short runs (previews, tests: noisier).
    ``full_lut``: build the LUT here block by block even when a shipped LUT could be transferred from.
    ``space_name``: ``network-demo`` (stages of conv/dwsep/bottleneck/mbconv/attention layers; accuracy by NASWOT
    then short trainings of the best), ``demo`` (MobileNetV3-style) or ``cell-demo`` (NAS-Bench-201-style cells):
    accuracy by a supernet of ``epochs`` epochs."""
    from dataclasses import asdict

    from hwnas.evaluate.supernet import SupernetConfig, default_sampling, read_checkpoint, stored_config, train_supernet
    from hwnas.finalize import finalize
    from hwnas.latency.predict import latency_predictor
    from hwnas.measuring.profiling import build_lut
    from hwnas.search import Constraints, run_search
    from hwnas.search.refine import refine_run
    from hwnas.spaces.base import get_space, kind_part

    start = time.perf_counter()
    out = Path(out)
    prepare_out(out, force)
    space = get_space(space_name)
    steps: dict[str, float] = {}

    # 1. LUT
    t = time.perf_counter()
    lut_path, notes = matching_lut(profiler, space_name)
    donor = None if lut_path is not None or full_lut else donor_lut(profiler, space_name)
    if lut_path is not None:
        log(f"[1/4] LUT: using shipped {lut_path} (its {profiler} fingerprint matches this machine)")
    elif donor is not None:
        for n in notes:
            log(f"      {n}")
        lut_path = out / f"lut_{profiler}_{space_name}_transfer.json"
        existing = LUT.load(lut_path) if lut_path.exists() else None
        if existing is not None and existing.transfer:
            log(f"[1/4] LUT: reusing {lut_path}, {existing.provenance}")
        else:
            log(f"[1/4] LUT: no shipped {profiler} LUT matches this machine; transferring from {donor}, the "
                f"closest shipped device ({TRANSFER_NETWORKS} networks measured here, then the drift reference; "
                f"--full-lut builds one block by block instead)")
            from hwnas.measuring.transfer import transfer_lut

            tr = transfer_lut(donor, profiler, lut_path, space=space, networks=TRANSFER_NETWORKS,
                              profiler_options=demo_profiler_options(quick), processes=1 if quick else 2, seed=seed,
                              command=command, log=log)
            log(f"      transfer LUT {lut_path}: leave-one-out MAPE {tr.loo_mape_pct:.1f} % on its "
                f"{tr.networks} networks ({tr.loo_within_10_pct:.0f} % within +-10 %), device time "
                f"{tr.device_seconds['total']:.0f} s")
    else:
        for n in notes:
            log(f"      {n}")
        lut_path = out / f"lut_{profiler}_{space_name}.json"
        verb = "resuming (or reusing)" if lut_path.exists() else "building"
        begun = begun_quick(lut_path)
        switched = begun is not None and begun != quick
        if switched:
            quick = bool(begun)  # one LUT, one timing policy: the budget and the search's latencies stay as they were
        passes = 1 if quick else 2  # quick: a preview, so one pass of fresh processes instead of the lowest of two
        log(f"[1/4] LUT: no shipped {profiler} LUT for this machine; {verb} {lut_path} "
            f"({len(space.all_layers())} blocks, {passes} pass{'es' if passes > 1 else ''}, then calibration)")
        if switched:
            log(f"      {lut_path} was begun {'with' if quick else 'without'} --quick: it goes on that way "
                f"(--force starts over)")
        build_lut(profiler, space, lut_path, profiler_options=demo_profiler_options(quick), calib_archs=20, seed=seed, command=command,
                  processes=passes)
    from hwnas.measuring.build_noise import build_warning

    built = LUT.load(lut_path)
    warning = build_warning(built.settings.get("noise"), built.calibration, lut_path)  # built now, reused or shipped
    if warning:
        log(f"      {warning}")
    steps["lut_s"] = time.perf_counter() - t

    lut = LUT.load(lut_path)
    predictor = latency_predictor(lut, space)
    _, fastest = predictor.fastest()
    largest = predictor.predict(space.largest())
    budget = round(fastest + BUDGET_FRACTION * (largest - fastest), 3)
    run_dir = out / "search"
    search_args = dict(population=population, generations=generations, seed=seed,
                       constraints=Constraints(budget_ms=budget, margin=MARGIN), resume=(run_dir / "run.sqlite").exists(),
                       command=command)
    budget_line = (f"predicted latency range of the space {fastest:.3f}-{largest:.3f} ms ({profiler}); "
                   f"budget {budget:.3f} ms ({BUDGET_FRACTION:.0%} of the way up; picks kept {MARGIN:.0%} below it)")
    if kind_part(space, "supernet") is None:
        # 2. a cheap score for every arch the search proposes, 3. the best under the budget trained briefly
        t = time.perf_counter()
        log(f"[2/4] search: {budget_line}; accuracy by {REFINE_EVALUATOR} on {data} (one batch, no training)")
        result = run_search(lut_path, run_dir, evaluator=REFINE_EVALUATOR, data=data, **search_args)
        log(f"      {result.evaluations} archs evaluated; front of {len(result.front)}")
        steps["search_s"] = time.perf_counter() - t
        t = time.perf_counter()
        log(f"[3/4] refine: the {refine_top} best under the budget trained {refine_epochs} epochs each and "
            f"re-ranked (mean rank of the two fidelities)")
        refined = refine_run(run_dir, refine_top, refine_epochs, data, seed, command=command,
                             log=lambda s: log(f"      {s}"))
        log(f"      pick {refined.pick}" + (" (the search's best too)" if refined.pick == refined.search_best
                                            else f" (the search's best by its score alone: {refined.search_best})"))
        steps["refine_s"] = time.perf_counter() - t
        accuracy_axis = accuracy_axis_line(space_name, "multifidelity")
    else:
        # 2. supernet
        t = time.perf_counter()
        ckpt = out / "supernet.pt"
        cfg = SupernetConfig(data=data, epochs=epochs, seed=seed, sampling=default_sampling(space))
        done = False
        if ckpt.exists():
            blob = read_checkpoint(ckpt)
            done = blob["epochs_done"] == epochs and stored_config(blob) == asdict(cfg)
        if done:
            log(f"[2/4] supernet: {ckpt} already trained ({epochs} epochs)")
        else:
            log(f"[2/4] supernet: training {epochs} epochs on {data} (sandwich rule + in-place distillation)")
            train_supernet(space, ckpt, cfg, resume=True, command=command)
        hist = read_checkpoint(ckpt)["history"][-1]
        log(f"      validation accuracy: largest {hist['val_acc_largest']:.1f} %, smallest "
            f"{hist['val_acc_smallest']:.1f} %")
        steps["supernet_s"] = time.perf_counter() - t

        # 3. search under a budget inside the space's latency range
        t = time.perf_counter()
        log(f"[3/4] search: {budget_line}")
        result = run_search(lut_path, run_dir, evaluator="supernet", evaluator_options={"checkpoint": str(ckpt)},
                            **search_args)
        log(f"      {result.evaluations} archs evaluated; front of {len(result.front)}")
        steps["search_s"] = time.perf_counter() - t
        accuracy_axis = accuracy_axis_line(space_name, "supernet")

    # 4. finalize
    t = time.perf_counter()
    log("[4/4] finalize: ONNX export, parity, .ort, measured latency")
    report = finalize(run_dir, out / "final", force=True, command=command, log=lambda s: log(f"      {s}"),
                      train_epochs=FINAL_TRAIN_EPOCHS)
    steps["finalize_s"] = time.perf_counter() - t

    lat = report.latency
    summary = {"space": space_name, "accuracy_axis": accuracy_axis,
        "front_size": len(result.front), "pick": report.arch_id, "budget_ms": budget,
        "predicted_ms": lat.predicted_ms, "measured_ms": lat.measured_ms, "verdict": lat.verdict,
        "test_accuracy": report.test_accuracy, "report": str(out / "final" / "report.md"),
        "lut": str(lut_path), "lut_provenance": lut.provenance or None, "wall_s": round(time.perf_counter() - start, 1),
        "steps_s": {k: round(v, 1) for k, v in steps.items()},
        "peak_rss_mib": round(peak_rss_mib(children=True), 1),
        "command": command or " ".join(sys.argv),
    }
    atomic_write_text(out / "summary.json", jsonio.dumps(summary, indent=1))
    log("")
    log(f"front: {summary['front_size']} archs; pick {summary['pick']}: test accuracy {summary['test_accuracy']:.2f} %")
    log(lat.line())
    if accuracy_axis:
        log(accuracy_axis)
    log(f"report: {summary['report']}  (wall time {summary['wall_s']:.0f} s, peak RSS {summary['peak_rss_mib']:.0f} MiB)")
    return summary
