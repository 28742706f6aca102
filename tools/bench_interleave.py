#!/usr/bin/env python3
"""Does timing each network in alternation with a fixed reference network cancel slow spells?

The same N demo-space networks are measured twice (two rounds, a fresh process per network and round) in
three ways, interleaved so that all three see the same moments of the device:

  plain        time_callable, the median of its samples (how hwnas measures today, one process);
  paired       time_paired: item and reference alternate sample by sample; median(item/reference) x the
               reference's calm latency (its lowest median over 5 fresh processes at the start);
  best-of-2    plain in two fresh processes, the lower median (today's LUT rule, without extra passes).

For each: how often round 2 agrees with round 1 within +-10 % (repeatability), MAPE and worst between
rounds, and seconds spent. ``--busy K`` runs K unpinned CPU-bound processes beside it (on 2 cores: the
measuring core is time-sliced, as when other hwnas commands run). ORT CPU, 1 thread, pinned to the last CPU.

    python tools/bench_interleave.py --n 30                 # quiet host
    python tools/bench_interleave.py --n 30 --busy 2        # beside two busy loops
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)}
    names = [o.name for o in sess.get_outputs()]
    return lambda: sess.run(names, feed)


def _job(args: tuple) -> dict:
    """In a fresh process pinned to ``cpu``: one measurement of ``path`` in the way ``how`` says."""
    how, path, ref, cpu = args
    from hwnas_agent.timing import TimingPolicy, time_callable, time_paired

    os.sched_setaffinity(0, {cpu})
    t0 = time.perf_counter()
    fn = _session(path)
    if how == "paired":
        p = time_paired(fn, _session(ref), TimingPolicy())
        return {"ratio": p.ratio.median_ms, "item_ms": p.item.median_ms, "s": time.perf_counter() - t0}
    return {"ms": time_callable(fn, TimingPolicy()).median_ms, "s": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside the measurement [0]")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import tempfile

    from hwnas.spaces.blocks import build_model
    from hwnas.profilers._ort import export_onnx
    from hwnas.spaces.base import get_space

    space, rng = get_space("demo"), random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-interleave-"))
    archs = [space.sample(rng) for _ in range(args.n + 1)]
    paths = []
    for i, a in enumerate(archs):
        p = tmp / f"net{i}.onnx"
        p.write_bytes(export_onnx(build_model(a), (1, space.in_channels, a.resolution, a.resolution)))
        paths.append(str(p))
    ref, items = paths[0], paths[1:]
    cpu = sorted(os.sched_getaffinity(0))[-1]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    ctx = mp.get_context("spawn")
    try:
        with ctx.Pool(1, maxtasksperchild=1) as pool:
            calm = min(pool.apply(_job, (("plain", ref, ref, cpu),))["ms"] for _ in range(5))
            rounds = {"plain": [[], []], "paired": [[], []], "best-of-2": [[], []]}
            secs = {k: 0.0 for k in rounds}
            for r in range(2):
                for path in items:
                    a = pool.apply(_job, (("plain", path, ref, cpu),))
                    b = pool.apply(_job, (("paired", path, ref, cpu),))
                    c = pool.apply(_job, (("plain", path, ref, cpu),))
                    rounds["plain"][r].append(a["ms"])
                    rounds["paired"][r].append(b["ratio"] * calm)
                    rounds["best-of-2"][r].append(min(a["ms"], c["ms"]))
                    secs["plain"] += a["s"]
                    secs["paired"] += b["s"]
                    secs["best-of-2"] += a["s"] + c["s"]
    finally:
        for p in busy:
            p.kill()
    print(f"{args.n} demo networks, 2 rounds, ORT CPU 1 thread pinned to cpu {cpu}; busy processes beside: "
          f"{args.busy}; reference calm {calm:.4f} ms")
    print(f"{'method':10s} {'within ±10 %':>13s} {'MAPE %':>7s} {'worst %':>8s} {'seconds':>8s}")
    out = {"n": args.n, "busy": args.busy, "reference_calm_ms": calm, "rows": {}}
    for k, (r1, r2) in rounds.items():
        a, b = np.asarray(r1), np.asarray(r2)
        rel = (b - a) / a
        row = {"within10_pct": float(np.mean(np.abs(rel) <= 0.10) * 100), "mape_pct": float(np.mean(np.abs(rel)) * 100),
               "worst_pct": float(rel[np.argmax(np.abs(rel))] * 100), "seconds": secs[k], "round1": r1, "round2": r2}
        out["rows"][k] = row
        print(f"{k:10s} {row['within10_pct']:12.0f}% {row['mape_pct']:7.1f} {row['worst_pct']:+8.1f} {secs[k]:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
