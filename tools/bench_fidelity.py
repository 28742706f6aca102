#!/usr/bin/env python3
"""Fidelity of a LUT's latency predictions against end-to-end measurements on this device.

    python tools/bench_fidelity.py --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --n 50 --seed 1 --json out.json

Samples N archs the calibration did not use, measures each with the LUT's
profiler and prints share within ±5 %/±10 %, MAPE, worst error and Kendall tau
for the LUT predictor and two baselines (latency ∝ MACs, ∝ params).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.fidelity import run_fidelity  # noqa: E402
from hwnas.lut import LUT  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", type=Path, required=True)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pin-cpu", type=int, default=None, help="pin to this CPU (as the LUT build did)")
    ap.add_argument("--processes", type=int, default=2,
                    help="measure each arch in N fresh processes, keep the lowest median (0: this process) [2]")
    ap.add_argument("--json", type=Path, help="write the full report (per-arch rows) here")
    args = ap.parse_args()
    lut = LUT.load(args.lut)
    report = run_fidelity(lut, args.n, args.seed, options={"pin_cpu": args.pin_cpu}, processes=args.processes)
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
