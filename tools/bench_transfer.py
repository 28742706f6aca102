#!/usr/bin/env python3
"""Few-shot latency transfer: fidelity and device time for N = 5, 10, 20, 30 networks, beside baselines.

    python tools/bench_transfer.py --donor luts/amd-epyc-2c_ort-cpu_demo.json --out runs/bench-transfer/demo \\
        --json docs/fidelity/transfer_demo.json
    python tools/bench_transfer.py --donor luts/amd-epyc-2c_ort-cpu_mbv3.json --profiler torch-cpu \\
        --full-lut luts/amd-epyc-2c_torch-cpu_mbv3.json --out runs/bench-transfer/mbv3-torch

One transfer per N, each extending the last (the networks are nested: N = 10 re-uses N = 5's and measures 5
more), so each N's device time is what ``hwnas profile --transfer-from ... --networks N`` would spend. Then 50
held-out networks (none of the transfer's) measured in 2 rounds of 2 fresh processes each (the repeatability
row: round 2 against round 1, the ceiling of any figure here), and on them, for each N:

* transfer: the transfer LUT (hwnas.measuring.transfer);
* donor unchanged: the donor LUT with its own calibration;
* calibration-only refit: the donor's blocks, hwnas.measuring.calibrate's models refitted on the same N networks;
* latency proportional to MACs, fitted on the same N networks;

and, with ``--full-lut`` (a LUT built here in full, or ``--build-full PATH`` to build and time one), the full
build. ±10 %, MAPE, worst error and Kendall tau, as tools/bench_fidelity.py. Timings are only meaningful on a
quiet device: run nothing else beside it.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hwnas.core import jsonio  # noqa: E402
from hwnas.measuring.calibrate import choose_model, sample_archs  # noqa: E402
from hwnas.measuring.fidelity import arch_cost, error_stats, proportional_fit  # noqa: E402
from hwnas.latency.lut import LUT  # noqa: E402
from hwnas.measuring.measure import arch_measurer, lut_profiler_options, profiler_options  # noqa: E402
from hwnas.latency.predict import latency_predictor  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--donor", type=Path, required=True, help="the donor LUT (another device's)")
    ap.add_argument("--profiler", help="the profiler of this device [the donor's]")
    ap.add_argument("--space", help="shipped space name [the donor's]")
    ap.add_argument("--resolutions", type=int, nargs="+", help="only these resolutions [all]")
    ap.add_argument("--ns", type=int, nargs="+", default=[5, 10, 20, 30], help="networks per transfer [5 10 20 30]")
    ap.add_argument("--held-out", type=int, default=50, help="held-out networks to judge on [50]")
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out networks [1]")
    ap.add_argument("--processes", type=int, default=2,
                    help="fresh processes per measurement, lowest median (0: this process) [2]")
    ap.add_argument("--rounds", type=int, default=2, help="held-out measurement rounds (2: repeatability row) [2]")
    ap.add_argument("--time-budget", type=float, help="also a refined transfer at the largest N with this "
                                                      "budget in seconds (--time-budget of hwnas profile)")
    ap.add_argument("--full-lut", type=Path, help="a LUT of this device built in full, judged on the same networks")
    ap.add_argument("--build-full", type=Path, metavar="PATH", help="build that full LUT here first (timed)")
    ap.add_argument("--quick", action="store_true", help="short timing runs: a smoke test of the tool only")
    ap.add_argument("--out", type=Path, required=True, help="directory for the transfer LUTs")
    ap.add_argument("--json", type=Path, help="write every figure and per-network row here")
    ap.add_argument("--held-out-from", type=Path, metavar="JSON",
                    help="the held-out measurements of an earlier --json of this pair (same networks, checked by id) "
                         "instead of measuring them again: a refit of the same data after a change of the model. "
                         "With the same --out, the transfers reuse their networks' measurements too")
    ap.add_argument("--device", metavar="tcp://HOST:PORT", help="measure on that device's hwnas-agent")
    ap.add_argument("--token-file", help="the agent's token file (with --device)")
    args = ap.parse_args()
    from hwnas.measuring.measure import target_device

    with target_device(args.device, args.token_file):
        return _run(args)


def _row(name: str, n: int | None, seconds: float | None, stats: dict) -> dict:
    return {"method": name, "networks": n, "device_s": None if seconds is None else round(seconds, 1), **stats}


def _run(args: argparse.Namespace) -> int:
    from hwnas.spaces.base import get_space
    from hwnas.measuring.transfer import transfer_lut

    donor = LUT.load(args.donor)
    space = get_space(args.space) if args.space else donor.search_space()
    profiler = args.profiler or donor.profiler
    extra = {}
    if args.quick:
        from hwnas.profilers.base import TimingPolicy

        extra["policy"] = TimingPolicy.quick()
    options = profiler_options(1, **extra)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "transfer.json"
    luts: dict[int, Path] = {}
    # a refit (--held-out-from): every transfer starts from the largest one's networks, measured before
    largest = args.out / f"transfer_N{max(args.ns)}.json"
    reuse = largest if args.held_out_from and largest.exists() else None
    for n in sorted(set(args.ns)):
        if reuse is not None:
            shutil.copyfile(reuse, work)
        r = transfer_lut(args.donor, profiler, work, space=space, networks=n, resolutions=args.resolutions,
                         profiler_options=options, processes=args.processes, command=" ".join(sys.argv))
        luts[n] = args.out / f"transfer_N{n}.json"
        shutil.copyfile(work, luts[n])
        print(f"N={n}: leave-one-out MAPE {r.loo_mape_pct:.2f} %, device time {r.device_seconds['total']:.0f} s",
              file=sys.stderr)
    refined = None
    if args.time_budget:
        n = max(luts)
        path = args.out / f"transfer_N{n}_refined.json"
        shutil.copyfile(luts[n], path)
        transfer_lut(args.donor, profiler, path, space=space, networks=n, resolutions=args.resolutions,
                     profiler_options=options, processes=args.processes, time_budget_s=args.time_budget,
                     command=" ".join(sys.argv))
        refined = (n, path)
    full_s = None
    if args.build_full:
        from hwnas.measuring.profiling import build_lut

        t0 = time.perf_counter()
        build_lut(profiler, space, args.build_full, resolutions=args.resolutions, profiler_options=options,
                  processes=args.processes, command=" ".join(sys.argv))
        full_s = time.perf_counter() - t0
        args.full_lut = args.build_full

    biggest = LUT.load(luts[max(luts)])
    used = {r["arch_id"] for r in biggest.calibration["data"]}
    used |= {space.arch_from_dict(a).id for a in (biggest.reference or {}).get("archs", [])}
    resolutions = args.resolutions or list(space.resolutions)
    held = sample_archs(space, args.held_out, args.seed, resolutions, exclude=used, extremes=False)
    from tqdm.auto import tqdm

    mopts = lut_profiler_options(biggest, **({"policy": extra["policy"]} if extra else {}))
    passes, rounds = max(1, args.processes), max(1, args.rounds)
    if args.held_out_from:
        earlier = json.loads(args.held_out_from.read_text())["held_out"]
        if [r["arch_id"] for r in earlier] != [a.id for a in held]:
            print(f"error: {args.held_out_from} holds other held-out networks than this run's (another space, "
                  f"seed, --held-out or transfer networks): measure them instead", file=sys.stderr)
            return 2
        Y = np.array([r["measured_rounds_ms"] for r in earlier], float).T
    else:
        bar = tqdm(desc=f"held-out: {len(held)} networks x {rounds} round(s) x {passes} process(es)", unit="net",
                   total=len(held) * passes * rounds, dynamic_ncols=True)
        measure = arch_measurer(profiler, mopts, args.processes, bar)
        Y = []
        for k in range(rounds):
            order = list(range(len(held)))[::(-1 if k % 2 else 1)]
            y_k = np.empty(len(held))
            y_k[order] = [m.median_ms for m in measure([held[i] for i in order])]
            Y.append(y_k)
        bar.close()
        Y = np.vstack(Y)
    y = Y.min(axis=0)

    rows = []
    donor_pred = latency_predictor(donor, space).predict_many(held)
    donor_raw = latency_predictor(donor, space, calibrated=False)
    held_raw = donor_raw.features_many(held)
    held_macs = np.array([arch_cost(a)[0] for a in held])
    rows.append(_row(f"donor unchanged ({donor.profiler})", None, 0.0, error_stats(donor_pred, y)))
    for n, path in sorted(luts.items()):
        lut = LUT.load(path)
        data = lut.calibration["data"]
        seconds = lut.transfer["device_seconds"]
        rows.append(_row("transfer", n, seconds["total"], error_stats(latency_predictor(lut, space).predict_many(held), y)))
        archs = [space.arch_from_dict(r["arch"]) for r in data]
        ym = np.array([r["measured"]["median_ms"] for r in data])
        if n >= 1:
            model, coef, _ = choose_model(donor_raw.features_many(archs), ym)
            rows.append(_row(f"calibration-only refit ({model})", n, seconds["networks"],
                             error_stats(held_raw @ coef, y)))
            a = proportional_fit(np.array([arch_cost(x)[0] for x in archs]), ym)
            rows.append(_row("latency ∝ MACs", n, seconds["networks"], error_stats(a * held_macs, y)))
    if refined:
        lut = LUT.load(refined[1])
        rows.append(_row(f"transfer + refinement ({len(lut.transfer['measured_blocks'])} blocks)", refined[0],
                         lut.transfer["device_seconds"]["total"],
                         error_stats(latency_predictor(lut, space).predict_many(held), y)))
    if args.full_lut:
        full = LUT.load(args.full_lut)
        rows.append(_row("full build", None, full_s, error_stats(latency_predictor(full, space).predict_many(held), y)))
    repeat = error_stats(Y[1], Y[0]) if len(Y) >= 2 else None
    if repeat:
        rows.append(_row("repeatability: round 2 vs round 1", None, None, repeat))

    head = f"{'method':40s} {'N':>3s} {'device s':>9s} {'±10 %':>7s} {'MAPE':>7s} {'worst':>8s} {'tau':>6s}"
    print(f"transfer {donor.label} -> {profiler} here, space {space.name}: {len(held)} held-out networks, "
          f"{rounds} round(s) of {passes} fresh process(es), lowest median")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        dev = "" if r["device_s"] is None else f"{r['device_s']:.0f}"
        print(f"{r['method']:40s} {r['networks'] or '':>3} {dev:>9s} {r['within_10_pct']:6.1f}% {r['mape_pct']:6.2f}% "
              f"{r['worst_error_pct']:+7.1f}% {r['kendall_tau']:6.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(jsonio.dumps({
            "donor": str(args.donor), "profiler": profiler, "space": space.name, "rows": rows,
            "luts": {str(n): str(p) for n, p in luts.items()}, "full_lut": str(args.full_lut) if args.full_lut else None,
            "held_out": [{"arch_id": a.id, "measured_rounds_ms": [round(float(v), 5) for v in Y[:, i]]}
                         for i, a in enumerate(held)]}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
