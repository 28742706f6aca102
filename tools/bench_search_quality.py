#!/usr/bin/env python3
"""The end-to-end proof of the accuracy axis: do searched archs beat random ones of the same latency?

    python tools/bench_search_quality.py [--lut luts/amd-epyc-2c_ort-cpu_demo.json] [--evaluator proxy:naswot]
        [--evaluator-option KEY=VALUE ...] [--budget-ms MS] [--top 5] [--seeds 3] [--tolerance 0.05]
        [--data fashion-mnist] [--data-limit 1000] [--epochs 12] [--workers 2] [--json out.json]

Searches the LUT's space under a budget in the middle of its latency range (default: the median
predicted latency of random archs, where archs of every resolution compete), takes
the TOP most accurate archs of the front, pairs each with a random arch of the same predicted latency
(±TOLERANCE), trains all of them from scratch with the reference recipe (tools/bench_reference.py's:
SEEDS seeds, scored on the test split) and prints the table: the searched archs win if they beat their
latency twins by more than the seed-to-seed spread. The LUT only sets the latency axis (any LUT of the
space will do); the search and every training are saved in --workdir and reused on a rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.core import jsonio  # noqa: E402
from hwnas.app.args import key_values  # noqa: E402
from hwnas.bench.reference import Recipe, workers_default  # noqa: E402
from hwnas.bench.search_quality import format_quality, run_search_quality  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", default="luts/amd-epyc-2c_ort-cpu_demo.json", help="sets the latency axis [%(default)s]")
    ap.add_argument("--evaluator", default="proxy:naswot", help="the search's accuracy signal [%(default)s]")
    ap.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                    help="evaluator option, repeatable (e.g. checkpoint=runs/x/supernet.pt, data=fashion-mnist)")
    ap.add_argument("--budget-ms", type=float, help="[the median predicted latency of random archs]")
    ap.add_argument("--top", type=int, default=5, help="searched archs (the most accurate of the front) [5]")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per arch [3]")
    ap.add_argument("--tolerance", type=float, default=0.05, help="latency match of the random twins [0.05]")
    ap.add_argument("--population", type=int, default=24)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0, help="seed of the search and of the random twins")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--data-limit", type=int, default=1000, help="images per class; 0 = all [1000]")
    ap.add_argument("--epochs", type=int, default=12, help="reference training epochs [12]")
    ap.add_argument("--workers", type=int, default=workers_default())
    ap.add_argument("--workdir", default="runs/bench_reference", help="search and trainings, reused [%(default)s]")
    ap.add_argument("--json", help="write every pick, score and accuracy here")
    a = ap.parse_args()
    if a.seeds < 2:
        ap.error("--seeds must be 2 or more: the seed-to-seed spread is the bar to clear")
    if a.top < 1 or not 0 < a.tolerance < 1:
        ap.error("--top must be >= 1 and --tolerance in (0, 1)")
    options = key_values(a.evaluator_option, "--evaluator-option")
    recipe = Recipe(a.data, a.data_limit or None, a.epochs)
    q = run_search_quality(a.lut, a.workdir, evaluator=a.evaluator, evaluator_options=options, recipe=recipe,
                           seeds=range(a.seeds), top=a.top, tolerance=a.tolerance, budget_ms=a.budget_ms,
                           population=a.population, generations=a.generations, seed=a.seed, workers=a.workers)
    print(f"\n{q.space}: search with {q.evaluator} under {q.budget_ms:.3f} ms (predicted range "
          f"{q.latency_range_ms[0]:.3f}-{q.latency_range_ms[1]:.3f} ms), {q.search['evaluations']} archs evaluated, "
          f"front of {q.search['front_size']}; reference: {recipe.describe()}, seeds {q.seeds}")
    print(format_quality(q))
    if a.json:
        Path(a.json).write_text(jsonio.dumps(q.to_dict(), indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
