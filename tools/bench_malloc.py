#!/usr/bin/env python3
"""Show the glibc-malloc trap on PyTorch CPU and that torch-cpu's fix holds across processes.

    python tools/bench_malloc.py --procs 3

Times a MobileNet block (24 ch, 56x56, expand 6, k3) in fresh processes, with
glibc's default allocator settings and with the fixed thresholds torch-cpu sets,
and prints median latency and minor page faults per call for each process.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import torch
from hwnas.spaces.blocks import LayerDesc
from hwnas.profilers.base import time_callable
from hwnas.profilers._host import tune_malloc
if sys.argv[1] == "mallopt":
    tune_malloc()
torch.set_num_threads(1)
d = LayerDesc("mbconv", 24, 24, 56, kernel=3, stride=1, mid=144, act="relu6")
m, x = d.build().eval(), torch.randn(*d.input_shape)
with torch.inference_mode():
    r = time_callable(lambda: m(x))
print(json.dumps({"median_ms": r.median_ms, "p90_ms": r.p90_ms, "faults": r.minflt_per_call}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="pin the children to this CPU (taskset)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    prefix = ["taskset", "-c", str(args.cpu)] if args.cpu is not None else []
    print(f"{'allocator':10s} {'process':>7s} {'median ms':>10s} {'p90 ms':>8s} {'faults/call':>12s}")
    medians = {}
    for mode in ("default", "mallopt"):
        for i in range(args.procs):
            out = subprocess.run([*prefix, sys.executable, "-c", CHILD, mode, str(ROOT)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            medians.setdefault(mode, []).append(r["median_ms"])
            print(f"{mode:10s} {i:7d} {r['median_ms']:10.3f} {r['p90_ms']:8.3f} {r['faults']:12.1f}")
    d, m = sorted(medians["default"]), sorted(medians["mallopt"])
    print(f"median over processes: default {d[len(d) // 2]:.3f} ms, mallopt {m[len(m) // 2]:.3f} ms "
          f"(ratio {d[len(d) // 2] / m[len(m) // 2]:.2f}x); spread of mallopt process medians "
          f"{(m[-1] - m[0]) / m[len(m) // 2] * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
