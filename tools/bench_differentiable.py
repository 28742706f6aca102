#!/usr/bin/env python3
"""The differentiable strategy against nsga2 and random search at equal wall time, on a real supernet.

    python tools/bench_differentiable.py --lut luts/amd-epyc-2c_ort-cpu_demo.json \\
        --checkpoint runs/sn-demo-fashion.pt --seeds 2

Every run is a real ``hwnas search`` (run store, supernet evaluator on its validation split, LUT
latency). First the differentiable run (``--generations`` lambdas of ``--steps`` steps each); its wall
time W is the budget of the others: nsga2 and random run past W, and only what they had evaluated W
seconds after they started counts (the run store's timestamps). Reported per strategy: evaluations, the
hypervolume of the feasible front (accuracy up, latency down; one reference point for all: the lowest
accuracy any run scored, and the latency budget) and the best accuracy under the budget; medians over
seeds. Train the supernet first, e.g. ``hwnas supernet --space demo --data fashion-mnist --data-limit 1000
--epochs 20 --out runs/sn-demo-fashion.pt`` (about 15 min on one thread).
"""
from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.latency.lut import LUT  # noqa: E402
from hwnas.latency.predict import latency_predictor  # noqa: E402
from hwnas.search import Constraints, run_search  # noqa: E402
from hwnas.search.pareto import hypervolume_2d  # noqa: E402
from hwnas.search.run import searchable_space  # noqa: E402


def timed(lut, out, **kw):
    t = time.perf_counter()
    result = run_search(lut, out, progress=False, **kw)
    return result, time.perf_counter() - t


def evals_until(out: Path, cutoff: float | None) -> list[tuple[float, float]]:
    """(accuracy, latency) of every arch the run evaluated by ``cutoff`` (Unix time; None: all)."""
    with sqlite3.connect(f"file:{out / 'run.sqlite'}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT accuracy, latency_ms, created FROM evals").fetchall()
    return [(a, ms) for a, ms, created in rows
            if cutoff is None or datetime.fromisoformat(created).timestamp() <= cutoff]


def equal_time(lut, out, wall: float, **kw) -> float:
    """A run long enough to outlast ``wall`` seconds (two generations timed first, then resumed with 40 %
    to spare); returns its start, so that what it had evaluated ``wall`` seconds later can be cut out."""
    start = time.time()
    _, took = timed(lut, out, generations=2, **kw)
    gens = max(3, math.ceil(1.4 * wall / (took / 2)))
    timed(lut, out, generations=gens, resume=True, **kw)
    return start


def hypervolume(points: list[tuple[float, float]], budget: float, ref: tuple[float, float]) -> float:
    feasible = [(-a, ms) for a, ms in points if ms <= budget]
    return hypervolume_2d(np.array(feasible), ref) if feasible else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", type=Path, default=Path("luts/amd-epyc-2c_ort-cpu_demo.json"))
    ap.add_argument("--checkpoint", type=Path, required=True, help="a supernet of the LUT's space")
    ap.add_argument("--budget-ms", type=float, default=None,
                    help="latency budget [the middle of the predicted range at the largest resolution]")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--generations", type=int, default=6, help="differentiable: lambdas on the path")
    ap.add_argument("--steps", type=int, default=40, help="differentiable: steps per lambda")
    ap.add_argument("--lam", type=float, default=0.02, help="differentiable: the first lambda")
    ap.add_argument("--population", type=int, default=4, help="differentiable: archs proposed per lambda")
    ap.add_argument("--search-population", type=int, default=8, help="nsga2 / random population")
    ap.add_argument("--strategies", nargs="+", default=["nsga2", "random"])
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here [a temporary directory]")
    ap.add_argument("--json", type=Path, default=None, help="write every number here")
    args = ap.parse_args()

    lut = LUT.load(args.lut)
    space = searchable_space(lut, args.lut, None)
    pred = latency_predictor(lut, space)
    if args.budget_ms is None:
        _, fastest = pred.fastest()
        big = space.from_genes(space.gene_upper_bounds())
        args.budget_ms = round(fastest + 0.5 * (pred.predict(big) - fastest), 4)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-diff-"))
    common = dict(evaluator="supernet", evaluator_options={"checkpoint": str(args.checkpoint)},
                  constraints=Constraints(budget_ms=args.budget_ms))
    print(f"budget {args.budget_ms} ms; supernet {args.checkpoint}; runs in {work}")
    rows = []  # (strategy, seed, wall seconds, evaluated points)
    for seed in range(args.seeds):
        out = work / f"differentiable-{seed}"
        _, wall = timed(args.lut, out, strategy="differentiable", seed=seed, population=args.population,
                        generations=args.generations, strategy_options={"steps": args.steps, "lam": args.lam},
                        **common)
        rows.append(("differentiable", seed, wall, evals_until(out, None)))
        print(f"seed {seed}: differentiable {wall:.0f} s, {len(rows[-1][3])} evaluations", flush=True)
        for name in args.strategies:
            out = work / f"{name}-{seed}"
            start = equal_time(args.lut, out, wall, strategy=name, seed=seed, population=args.search_population,
                               **common)
            rows.append((name, seed, wall, evals_until(out, start + wall)))
            print(f"seed {seed}: {name}: {len(rows[-1][3])} evaluations in its first {wall:.0f} s", flush=True)
    floor = min(a for *_, points in rows for a, _ in points)
    ref = (-floor, args.budget_ms)
    table: dict[str, dict[str, list]] = {}
    for name, seed, wall, points in rows:
        t = table.setdefault(name, {"wall_s": [], "evaluations": [], "hv": [], "best": []})
        t["wall_s"].append(round(wall, 1))
        t["evaluations"].append(len(points))
        t["hv"].append(hypervolume(points, args.budget_ms, ref))
        t["best"].append(max((a for a, ms in points if ms <= args.budget_ms), default=math.nan))
    print(f"\nmedians over {args.seeds} seed(s), at the differentiable run's wall time; hypervolume of the "
          f"feasible front, reference accuracy {floor:.2f} % and latency {args.budget_ms} ms")
    print(f"{'strategy':16s} {'wall s':>8s} {'evals':>6s} {'HV':>10s} {'best acc':>9s}")
    for name, t in table.items():
        print(f"{name:16s} {statistics.median(t['wall_s']):8.0f} {statistics.median(t['evaluations']):6.0f} "
              f"{statistics.median(t['hv']):10.4f} {statistics.median(t['best']):9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "reference": ref,
                                         "runs": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
