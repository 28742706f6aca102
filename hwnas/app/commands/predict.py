"""``hwnas predict``, ``measure``, ``sample`` and ``probe``: price, time and draw networks, and judge the device."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from hwnas.app.args import (CLIError, MAX_SAMPLE, add_probe_flags, add_profiler_flags, add_quiet, add_space,
                            add_space_data, archs_of, at_resolution, file_path, load_archs, positive_int,
                            profiler_options_of, sample_count, seed_int, space_of, warn_noisy)
from hwnas.core import jsonio
from hwnas.core.errors import EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.spaces.base import macs_m

    if not args.arch and not getattr(args, "archs", None) and args.sample < 1:
        raise CLIError("predict needs --arch FILE [FILE ...], --archs LIST or --sample N (N >= 1)")
    if len(args.lut) > 1:
        return _compare(args)
    lut = LUT.load(args.lut[0])
    warn_noisy(lut)
    space = space_of(args, lut)
    predictor = latency_predictor(lut, space)

    def rows_of(archs: list) -> list[dict]:
        feats = predictor.features_many(archs)  # once: the prediction and the raw LUT sum both come from it
        preds = predictor.calibration.apply(feats)
        return [{"arch_id": a.id, "resolution": a.resolution, "summary": a.summary,
                 "predicted_ms": round(float(p), 4), "lut_sum_ms": round(float(f[0]), 4), "macs_m": round(macs_m(a), 1),
                 **a.report_fields()}
                for a, p, f in zip(archs, preds, feats)]

    if args.json:
        rows = rows_of(load_archs(args, space))
        print(jsonio.dumps({"lut": str(args.lut[0]), "profiler": lut.profiler, "precision": lut.precision,
                            "calibration": predictor.calibration.model, "lut_provenance": lut.provenance or None,
                            "predictions": rows}, indent=1))
        return EXIT_OK
    import itertools

    # sampled archs are priced and printed 1,000 at a time: the first lines come at once, not after all of them
    todo = iter(archs_of(args, space))
    archs: list = []
    first = True
    while chunk := list(itertools.islice(todo, 1000)):
        rows = rows_of(chunk)
        if first:
            print(f"predicted latency ({lut.label}, {lut.precision}; calibration: {predictor.calibration.model})")
            first = False
        for r in rows:
            print(f"  {r['arch_id']}  res {r['resolution']:3d}  {r['summary']}  {r['macs_m']:7.1f} MMACs  "
                  f"predicted {r['predicted_ms']:8.3f} ms  (LUT sum {r['lut_sum_ms']:.3f} ms)")
        sys.stdout.flush()
        if args.breakdown:
            archs += chunk
    if args.breakdown:
        for a in archs:
            print(f"\n{a.id} per block (LUT medians, uncalibrated):")
            for key, ms in predictor.breakdown(a):
                print(f"  {ms:8.4f} ms  {key}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    """``predict --lut A --lut B``: the LUTs' predictions side by side (hwnas.latency.compare)."""
    from hwnas.latency.compare import compare_luts, render
    from hwnas.latency.lut import LUT

    luts = [LUT.load(p) for p in args.lut]
    archs = load_archs(args, space_of(args, luts[0]))
    comparison = compare_luts(luts, archs, blocks=args.breakdown or args.json)
    print(jsonio.dumps(comparison.to_dict(), indent=1) if args.json else render(comparison, args.breakdown))
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    from hwnas.latency.lut import LUT
    from hwnas.measuring.measured import measure_targets

    lut = LUT.load(args.lut) if args.lut else None
    if lut is not None:
        warn_noisy(lut)
    name = args.profiler or (lut.profiler if lut else None)
    if not name:
        raise CLIError("measure needs --profiler NAME (or --lut FILE to use the LUT's profiler)")
    opts = profiler_options_of(args, lut)
    space = space_of(args, lut)
    archs = load_archs(args, space) if (args.arch or args.sample) else []
    if not args.model and not archs:
        raise CLIError("measure needs a model file, --arch FILE or --sample N")
    r = measure_targets(name, opts, lut=lut, space=space, model=args.model, archs=archs, processes=args.processes,
                        drift_check=not args.no_drift_check, precision=args.precision)
    if args.json:
        print(jsonio.dumps(r.to_dict(), indent=1))
    else:
        for item in r.items:
            print(item.line())
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    space = space_of(args)
    import random

    rng = random.Random(args.seed)
    archs = [at_resolution(space.sample(rng), args.resolution) for _ in range(args.n)]
    text = "\n".join(a.to_json() for a in archs) if args.n > 1 else jsonio.dumps(archs[0].to_dict(), indent=1)
    if args.out:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(Path(args.out), text + "\n")  # a full disk leaves the old file, never half of the new
        print(f"wrote {args.out}")
    else:
        print(text)
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    """``hwnas probe``: how repeatable this device is at the space's scale, and whether a neighbour is the cause."""
    from hwnas.measuring.noise_probe import probe

    result = probe(args.profiler, space_of(args), profiler_options_of(args), seconds=args.seconds)
    if args.json:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(args.json, jsonio.dumps(result.to_dict(), indent=1) + "\n")
    for line in result.lines():
        print(line)
    return EXIT_OK


def parser_predict(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("predict", cmd_predict, "predict network latency from a LUT",
            """
hwnas predict --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json --breakdown
hwnas predict --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --sample 5 --seed 0 --json""")
    p.add_argument("--lut", type=Path, required=True, action="append",
                   help="LUT file; twice or more (--lut fp32.json --lut int8.json) compares them per network and, "
                        "with --breakdown, per block")
    add_space(p, default=None)
    add_space_data(p)
    p.add_argument("--arch", type=Path, nargs="+", help="architecture JSON file(s)")
    p.add_argument("--archs", type=Path, metavar="FILE",
                   help="a list of archs in one file: a JSON list, JSON Lines, or for a cell space NAS-Bench-201 "
                        "strings one a line")
    p.add_argument("--sample", type=sample_count, default=0,
                   help=f"predict N random archs instead (at most {MAX_SAMPLE:,}; printed as they are priced)")
    p.add_argument("--resolution", type=int, help="input resolution of the sampled archs [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampled archs (--sample) [0]")
    p.add_argument("--breakdown", action="store_true", help="print each block's LUT latency")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def parser_measure(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("measure", cmd_measure, "measure a whole network end-to-end with a profiler (an arch or an ONNX file)",
            """
hwnas measure --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json   # LUT's profiler, plus prediction error
hwnas measure --profiler ort-cpu model.onnx""")
    p.add_argument("model", nargs="?", help="an ONNX (or .ort) file to measure")
    add_profiler_flags(p, required=False)
    p.add_argument("--lut", type=Path, help="use this LUT's profiler and settings and report the prediction error")
    add_space(p, default=None)
    add_space_data(p)
    p.add_argument("--arch", type=Path, nargs="+", help="architecture JSON file(s)")
    p.add_argument("--sample", type=int, default=0, help="measure N random archs")
    p.add_argument("--processes", type=int, default=1,
                   help="measure each arch in N fresh processes, keep the lowest median; 0 = this process [1]")
    p.add_argument("--resolution", type=int, help="input resolution of the sampled archs [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampled archs (--sample) [0]")
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    p.add_argument("--no-drift-check", action="store_true",
                   help="with --lut: skip re-measuring the LUT's reference networks first (saves a few seconds)")
    add_quiet(p)


def parser_probe(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("probe", cmd_probe, "how repeatable latency is on this device (~15 s), and whether a busy neighbour or "
                                "the device itself is the cause",
            """
hwnas probe                                   # ort-cpu, the mbv3 space, 15 s
hwnas probe --profiler ort-cpu --space nb201 --seconds 20 --json probe.json
hwnas probe --profiler torch-cpu --space demo --pin-cpu 0""")
    add_probe_flags(p)


def parser_sample(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("sample", cmd_sample, "write random architecture(s) of a space as JSON",
            "hwnas sample --space mbv3 --seed 1 --out arch.json")
    add_space(p)
    add_space_data(p)
    p.add_argument("--n", type=positive_int, default=1, help="how many archs (more than 1: JSON Lines, one a line) [1]")
    p.add_argument("--resolution", type=int, help="input resolution [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampling [0]")
    p.add_argument("--out", type=file_path, help="write here instead of printing")
