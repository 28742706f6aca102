#!/usr/bin/env python3
"""Data-free evaluators against NAS-Bench-201's public accuracies, beside the size baselines.

    python tools/bench_nb201_proxies.py [--n 1000] [--seed 0] [--evaluator proxy:meco ...]
                                        [--data-dir ../shared/data] [--json docs/nb201_proxies.json]

Scores N unique NAS-Bench-201 networks (built as hwnas's `cell` space builds them) with each evaluator, then
prints Spearman's rho against CIFAR-10 / CIFAR-100 / ImageNet16-120 test accuracy, Kendall's tau, and tau
within latency bins (pairs within 5 % of each other's latency on seven of HELP's real devices), with
#params and MACs as baselines. Nothing is fitted to the accuracies (hwnas.bench.nb201).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.bench.nb201 import DEFAULT_EVALUATORS, run_nb201_bench  # noqa: E402
from hwnas.core import jsonio  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="unique networks to score [1000]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample [0]")
    ap.add_argument("--evaluator", action="append", help="data-free evaluator, with options as 'NAME KEY=VALUE', repeatable "
                                                           f"[{', '.join(DEFAULT_EVALUATORS)}]")
    ap.add_argument("--data-dir", type=Path, help="folder of the ground-truth files [shared/data beside the checkout]")
    ap.add_argument("--json", type=Path, help="write every score and the table here")
    a = ap.parse_args()
    bench = run_nb201_bench(a.n, a.seed, a.evaluator or DEFAULT_EVALUATORS, a.data_dir,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"NAS-Bench-201, {a.n} unique networks (seed {a.seed}); pairs within 5 % latency: "
          + ", ".join(f"{d} {p}" for d, p in bench.pairs_near_latency.items()))
    print(bench.table())
    if a.json:
        a.json.write_text(jsonio.dumps({**bench.to_dict(), "table": bench.table()}, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
