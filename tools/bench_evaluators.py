#!/usr/bin/env python3
"""Rank quality of the accuracy evaluators against short training, on real data.

    python tools/bench_evaluators.py [--data digits] [--space demo] [--n 30] [--seed 0] [--reference-seeds 2] [--json out.json]

Samples N architectures of the space; short training with early stopping is the
reference; prints Kendall tau and Spearman rho of the supernet, the accuracy
predictor (trained on supernet accuracy of other archs) and each zero-cost proxy
against it, seconds per evaluation, and the supernet training's peak RSS.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas import jsonio
from hwnas.evaluate.benchmark import format_table, run_evaluator_bench  # noqa: E402
from hwnas.space import get_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--space", default="demo")
    ap.add_argument("--n", type=int, default=30, help="architectures to rank [30]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--supernet-epochs", type=int, default=20)
    ap.add_argument("--train-epochs", type=int, default=12, help="short training: most epochs [12]")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--predictor-archs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="processes for the short-training reference [2]")
    ap.add_argument("--reference-seeds", type=int, default=1,
                    help="train the reference with this many seeds; >= 2 also reports the noise ceiling [1]")
    ap.add_argument("--workdir", default="runs/bench_evaluators", help="supernet checkpoint goes here (reused)")
    ap.add_argument("--json", help="write every score and the table here")
    a = ap.parse_args()
    bench = run_evaluator_bench(get_space(a.space), Path(a.workdir), a.data, a.n, a.seed, a.supernet_epochs,
                                a.train_epochs, a.patience, a.predictor_archs, a.workers,
                                a.reference_seeds)
    print(f"\n{a.n} archs of space {a.space!r} on {a.data!r}, seed {a.seed}; reference: short training")
    print(format_table(bench))
    if bench.supernet.get("peak_rss_mib"):
        print(f"supernet training: {bench.supernet['train_seconds']} s, peak RSS {bench.supernet['peak_rss_mib']} MiB")
    if a.json:
        Path(a.json).write_text(jsonio.dumps(bench.to_dict(), indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
