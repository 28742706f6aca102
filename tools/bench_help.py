#!/usr/bin/env python3
"""Transfer to 18 real devices by HELP's few-shot protocol (NAS-Bench-201 latencies from HELP / HW-NAS-Bench).

    python tools/bench_help.py [--donor luts/..._ort-cpu_nb201.json] [--n 5 10 20] [--draws 20] [--seed 0]
                               [--device pixel3 ...] [--json docs/bench_help.json]

Pool = networks 0-899, query = 900-1899, each trimmed to its 10th-90th latency percentile; N networks drawn
from the pool at random (--draws times); Spearman on the query set for hwnas's transfer from the donor (and
on the networks hwnas would suggest), the donor unchanged, MACs (every non-none edge) and a plain per-op ridge.
(hwnas.bench.help)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwnas.bench.help import run_help_bench  # noqa: E402
from hwnas.core import jsonio  # noqa: E402


DEFAULT_DONOR = "amd-epyc-avx512-2c_ort-cpu_nb201.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--donor", type=Path, help=f"an ort-cpu LUT of space nb201 [luts/{DEFAULT_DONOR}]")
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10, 20], help="networks measured per draw [5 10 20]")
    ap.add_argument("--draws", type=int, default=20, help="random draws per device and N [20]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", nargs="+", help="only these devices [all 18]")
    ap.add_argument("--data-dir", type=Path, help="folder of the HELP file [shared/data beside the checkout]")
    ap.add_argument("--json", type=Path, help="write every row and the table here")
    a = ap.parse_args()
    donor = a.donor
    if donor is None:
        # the documented donor first (docs/profiling.md's table was made with it), then any other shipped one
        found = sorted((ROOT / "luts").glob("*_ort-cpu_nb201.json"), key=lambda p: (p.name != DEFAULT_DONOR, p.name))
        if not found:
            sys.exit("no shipped ort-cpu LUT of nb201: build one (python tools/profile_device.py --profiler ort-cpu "
                     "--space nb201 --out luts/mine_nb201.json) and pass --donor")
        donor = found[0].relative_to(ROOT)
    bench = run_help_bench(donor, a.n, a.draws, a.seed, a.device, a.data_dir,
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"HELP protocol, donor {donor}, {a.draws} draws per device and N (seed {a.seed})")
    print(bench.table())
    if a.json:
        a.json.write_text(jsonio.dumps({**bench.to_dict(), "table": bench.table()}, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
