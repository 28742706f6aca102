#!/usr/bin/env python3
"""Fidelity of a LUT's latency predictions against end-to-end measurements on this device.

    python tools/bench_fidelity.py --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --n 50 --seed 1 --json out.json

Samples N archs the calibration did not use, measures each with the LUT's
profiler and settings (threads, pinning) and prints share within ±5 %/±10 %,
MAPE, worst error and Kendall tau for the LUT predictor and two baselines
(latency ∝ MACs, ∝ params). It measures every network in 2 rounds and prints
how well the rounds agree (the repeatability row: no fidelity figure is more
precise than it), and re-measures the LUT's drift reference before and after,
printing the error corrected for the device's change of speed beside the raw one.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.core import jsonio
from hwnas.measuring.fidelity import run_fidelity  # noqa: E402
from hwnas.latency.lut import LUT  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", type=Path, required=True)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pin-cpu", default="as-lut",
                    help="pin the measuring processes to this CPU index, 'none', or 'as-lut' [as-lut]")
    ap.add_argument("--rounds", type=int, default=2, help="measure every network this many times [2]")
    ap.add_argument("--no-drift", action="store_true", help="skip re-measuring the LUT's drift reference")
    ap.add_argument("--processes", type=int, default=2,
                    help="measure each arch in N fresh processes, keep the lowest median (0: this process) [2]")
    ap.add_argument("--json", type=Path, help="write the full report (per-arch rows) here")
    ap.add_argument("--device", metavar="tcp://HOST:PORT", help="measure on that device's hwnas-agent")
    ap.add_argument("--token-file", help="the agent's token file (with --device)")
    args = ap.parse_args()
    from hwnas.measuring.measure import target_device

    with target_device(args.device, args.token_file):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    lut = LUT.load(args.lut)
    options = {} if args.pin_cpu == "as-lut" else {"pin_cpu": None if args.pin_cpu == "none" else int(args.pin_cpu)}
    report = run_fidelity(lut, args.n, args.seed, options=options, processes=args.processes, rounds=args.rounds,
                          drift=not args.no_drift)
    print(report.table())
    if args.json:
        args.json.write_text(jsonio.dumps(report.to_dict(), indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
