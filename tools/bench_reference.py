#!/usr/bin/env python3
"""Does the reference rank itself? Train the same archs with two (or more) seeds and compare.

    python tools/bench_reference.py [--space demo] [--data fashion-mnist] [--data-limit 1000] [--epochs 12]
                                    [--n 30] [--seeds 2] [--workers 2] [--workdir runs/bench_reference]

Prints the seeds' Kendall tau (all pairs, same resolution, top 10), the seed noise and the spread
between archs in accuracy points, the free baseline (resolution alone), and the CPU cost. Every
training is saved as it finishes (workdir/reference-DIGEST.json): run it again to resume, and
tools/bench_evaluators.py with the same recipe reuses it.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.core import jsonio  # noqa: E402
from hwnas.bench.reference import (Recipe, agreement, saved_reference, train_reference,  # noqa: E402
                                     workers_default)
from hwnas.spaces.base import get_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="demo")
    ap.add_argument("--resolutions", type=int, nargs="+",
                    help="input resolutions to sample from, replacing the space's (e.g. mbv3 at 32) [the space's]")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--data-limit", type=int, default=1000, help="images per class kept before the train/val split; 0 = all [1000]")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--patience", type=int, default=0, help="early stopping patience; 0 = none [0]")
    ap.add_argument("--part", default="test", choices=["val", "test"], help="split the final model is scored on")
    ap.add_argument("--n", type=int, default=30, help="architectures [30]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the arch sample; training seeds are 0..seeds-1")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=workers_default())
    ap.add_argument("--workdir", default="runs/bench_reference")
    ap.add_argument("--json", help="write the scores and the table here")
    ap.add_argument("--saved-only", action="store_true",
                    help="train nothing: report on the archs already trained with every seed (a run cut short)")
    a = ap.parse_args()
    if a.seeds < 2:
        ap.error("--seeds must be 2 or more: the point is how well two trainings of each arch agree")
    space = get_space(a.space)
    if a.resolutions:
        space = space.with_resolutions(a.resolutions)
    recipe = Recipe(a.data, a.data_limit or None, a.epochs, a.batch_size, a.lr, a.patience, a.part)
    archs = space.sample_distinct(a.n, random.Random(a.seed))
    t = time.perf_counter()
    if a.saved_only:
        archs, runs, cpu_s = saved_reference(archs, recipe, range(a.seeds), Path(a.workdir))
        if len(archs) < 3:
            ap.error(f"only {len(archs)} archs have every seed saved in {a.workdir}; run without --saved-only")
        print(f"--saved-only: {len(archs)} of {a.n} archs have all {a.seeds} seeds saved")
    else:
        runs, cpu_s = train_reference(archs, recipe, range(a.seeds), a.workers, Path(a.workdir))
    wall = time.perf_counter() - t
    ag = agreement(runs, archs)
    mean = [sum(v) / len(v) for v in zip(*runs.values())]

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    print(f"\n{len(archs)} archs of {space.name!r} (resolutions {list(space.resolutions)}), {a.seeds} training seeds")
    print(f"recipe: {recipe.describe()}")
    print(f"{'seed vs seed':<34} Kendall tau {ag.kendall_tau:.3f}   same-res tau {fmt(ag.tau_within_resolution)}   "
          f"top-10 tau {fmt(ag.tau_top10)}   Spearman {ag.spearman_rho:.3f}")
    sub = None
    if all(hasattr(x, "connected") for x in archs):  # cell archs: the disconnected ones are trivially last
        keep = [i for i, x in enumerate(archs) if x.connected]
        if 3 <= len(keep) < len(archs):
            sub = agreement({s: [v[i] for i in keep] for s, v in runs.items()}, [archs[i] for i in keep])
            print(f"{'  without ' + str(len(archs) - len(keep)) + ' disconnected archs':<34} Kendall tau "
                  f"{sub.kendall_tau:.3f}   top-10 tau {fmt(sub.tau_top10)}   Spearman {sub.spearman_rho:.3f}")
    print(f"{'resolution alone vs mean of seeds':<34} Kendall tau {ag.resolution_tau:.3f}   (the free baseline)")
    print(f"accuracy (%, mean of seeds): min {min(mean):.2f}, median {sorted(mean)[len(mean) // 2]:.2f}, "
          f"max {max(mean):.2f}; spread between archs sd {ag.arch_spread_sd:.2f} points, "
          f"seed noise sd {ag.seed_noise_sd:.2f} points")
    print(f"cost: median {cpu_s:.0f} CPU-s per arch and seed ({a.workers} workers, 1 thread each); "
          f"this call {wall:.0f} s wall")
    if a.json:
        Path(a.json).write_text(jsonio.dumps({"recipe": recipe.__dict__, "space": space.name,
                                              "archs": [x.to_dict() for x in archs],
                                              "runs": {str(k): v for k, v in runs.items()},
                                              "agreement": ag.__dict__, "cpu_s_per_training": cpu_s,
                                              **({"agreement_connected": sub.__dict__} if sub else {})}, indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
