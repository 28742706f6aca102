"""What distributing evaluations buys on this machine: the same search, serial vs a process pool vs Ray.

    python tools/bench_distributed.py [--lut luts/amd-epyc-2c_ort-cpu_demo.json] [--population 8]
                                      [--generations 2] [--epochs 2] [--data fashion-small] [--data-limit 60]
                                      [--modes serial serial-1t pool2 ray ray2] [--json out.json]

(1) The search (nsga2, the ``train`` evaluator: short training of every arch from scratch on real data)
runs once per mode, each in a fresh run directory; wall time, the speed-up over serial, and whether the
front is the same as serial's. Training scores depend on the threads one evaluation uses (float sums in
another order), so the seed decides the front for a given threads-per-evaluation: ``serial`` uses all
cores, ``serial-1t`` one thread as every pool and Ray worker does, and those must agree exactly. Ray's start-up (a local instance and
its actors) is part of its wall time, as a user pays it; it is also printed on its own.
(2) Per-task overhead: N cheap evaluations (``proxy:synflow``, ~10 ms each) serially in this process vs
as N Ray tasks on one warm actor; the difference per task is what Ray adds to each evaluation.

Needs ``pip install 'hwnas[ray]'`` for the Ray modes (skipped with a note otherwise). Measure on a quiet
machine: every mode competes for the same cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = {"serial": ("local", 1), "serial-1t": ("local", 1), "pool2": ("local", 2), "ray": ("ray", 1),
         "ray2": ("ray", 2)}


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict:
    from hwnas.search import Constraints, run_search

    import torch

    executor, workers = MODES[mode]
    threads = torch.get_num_threads()
    if mode == "serial-1t":  # one thread, as every pool or Ray worker evaluates: same scores, same front
        torch.set_num_threads(1)
    options = {"data": args.data, "max_epochs": args.epochs, "patience": 0, "data_limit": args.data_limit,
               "device": "cpu"}
    start = time.perf_counter()
    result = run_search(args.lut, workdir / mode, evaluator="train", evaluator_options=options,
                        population=args.population, generations=args.generations, seed=args.seed,
                        constraints=Constraints(), workers=workers, executor=executor, progress=False,
                        command="tools/bench_distributed.py")
    wall = time.perf_counter() - start
    torch.set_num_threads(threads)
    return {"mode": mode, "executor": executor, "workers": workers, "wall_s": round(wall, 2),
            "evaluations": result.evaluations, "front": sorted(r.arch_id for r in result.front)}


def ray_start_s() -> float:
    """A fresh local Ray instance and one actor holding an evaluator, until its first answer."""
    from hwnas.evaluate import create_evaluator
    from hwnas.search.dispatch import RayDispatcher
    from hwnas.spaces.base import get_space

    arch = get_space("demo").sample(0)
    start = time.perf_counter()
    d = RayDispatcher(workers=1)
    try:
        list(d.imap(create_evaluator("proxy:synflow"), [[arch]]))
    finally:
        d.close()
    return time.perf_counter() - start


def task_overhead_ms(n: int, repeats: int = 3) -> dict:
    """Median over ``repeats`` of (N tasks on a warm Ray actor - N evaluations in this process) / N."""
    from hwnas.evaluate import create_evaluator
    from hwnas.search.dispatch import RayDispatcher
    from hwnas.spaces.base import get_space

    import torch

    torch.set_num_threads(1)  # as the actor: the difference is then Ray's, not the thread count's
    archs = get_space("demo").sample_distinct(n, 11)
    ev = create_evaluator("proxy:synflow")
    d = RayDispatcher(workers=1)
    serial, remote = [], []
    try:
        list(d.imap(ev, [[archs[0]]]))  # warm: the actor is up and has the evaluator
        for _ in range(repeats):
            t = time.perf_counter()
            for a in archs:
                ev.evaluate([a])
            serial.append(time.perf_counter() - t)
            t = time.perf_counter()
            list(d.imap(ev, d.split(archs)))
            remote.append(time.perf_counter() - t)
    finally:
        d.close()
    s, r = statistics.median(serial), statistics.median(remote)
    return {"tasks": n, "serial_ms_per_eval": round(s / n * 1e3, 2), "ray_ms_per_task": round(r / n * 1e3, 2),
            "overhead_ms_per_task": round((r - s) / n * 1e3, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--lut", default="luts/amd-epyc-2c_ort-cpu_demo.json")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="training epochs per arch [2]")
    ap.add_argument("--data", default="fashion-small")
    ap.add_argument("--data-limit", type=int, default=60, help="images per class [60]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                    help="ray: one actor per CPU of the cluster (hwnas search --executor ray); ray2: --workers 2")
    ap.add_argument("--overhead-tasks", type=int, default=40, help="tasks for the per-task overhead; 0 skips it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    try:
        import ray
        have_ray = True
    except ImportError:
        ray, have_ray = None, False
    modes = [m for m in args.modes if have_ray or MODES[m][0] != "ray"]
    if len(modes) < len(args.modes):
        print("note: Ray is not installed (pip install 'hwnas[ray]'): its modes are skipped", file=sys.stderr)
    print(f"search: nsga2, population {args.population} x {args.generations} generations, evaluator train "
          f"({args.epochs} epochs, {args.data} {args.data_limit}/class), {args.lut}; {os.cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            rows.append(run_mode(mode, args, Path(tmp)))
            if MODES[mode][0] == "ray":
                ray.shutdown()  # the next Ray mode starts its own, as a user's next search would
            print(f"  {mode:7s} {rows[-1]['wall_s']:7.1f} s", file=sys.stderr)
    base = next((r for r in rows if r["mode"] == "serial"), None)
    one = next((r for r in rows if r["mode"] == "serial-1t"), None)
    print(f"{'mode':9s} {'workers':>7s} {'wall s':>8s} {'speed-up':>9s} {'evals':>6s}  same front as serial / serial-1t")
    for r in rows:
        speed = f"{base['wall_s'] / r['wall_s']:.2f}x" if base else "-"
        same = " / ".join("-" if b is None else ("yes" if r["front"] == b["front"] else "no") for b in (base, one))
        r["speedup"] = round(base["wall_s"] / r["wall_s"], 3) if base else None
        print(f"{r['mode']:9s} {r['workers']:7d} {r['wall_s']:8.1f} {speed:>9s} {r['evaluations']:6d}  {same}")
    extra: dict = {}
    if have_ray and args.overhead_tasks > 0:
        extra["ray_start_s"] = round(ray_start_s(), 2)
        ray.shutdown()
        extra["per_task"] = task_overhead_ms(args.overhead_tasks)
        ray.shutdown()
        o = extra["per_task"]
        print(f"Ray start-up (local instance + 1 actor, first answer): {extra['ray_start_s']:.1f} s")
        print(f"per task: {o['serial_ms_per_eval']:.1f} ms serial vs {o['ray_ms_per_task']:.1f} ms as a Ray task "
              f"on a warm actor: Ray adds {o['overhead_ms_per_task']:.1f} ms per task ({o['tasks']} tasks, "
              f"median of 3)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         **extra}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
