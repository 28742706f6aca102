#!/usr/bin/env python3
"""How many supernet epochs does `hwnas demo` need? Ranking and spread of its accuracy axis per epoch count.

    python tools/bench_demo_epochs.py --epochs 5 10 --json docs/bench_demo_epochs.json
    python tools/bench_demo_epochs.py --epochs 10 --seeds 0 1 2 3 4   # the spread a seed alone causes

Trains the demo's supernet (the demo space, its data ``fashion-small``, its sampling and seed) for each epoch
count, scores with it the 30 archs of the committed reference (docs/reference_fashion-mnist_demo.json: each
trained from scratch on Fashion-MNIST with 2 seeds), and prints for each: training seconds, Kendall tau against
the reference's mean (with the reference's own seed-vs-seed tau, the noise ceiling, beside it), tau against
the longest training's scores, and the spread of the scores (what the search's accuracy axis has to rank).
Training is CPU-bound: run nothing else beside it if the seconds matter.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--data", default="fashion-small", help="the demo's data [fashion-small]")
    ap.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0],
                    help="supernet seeds; several give the spread of tau a seed alone causes [0]")
    ap.add_argument("--reference", type=Path, default=ROOT / "docs" / "reference_fashion-mnist_demo.json")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_demo_epochs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from hwnas.core.metrics import kendall_tau
    from hwnas.evaluate.supernet import SupernetConfig, SupernetEvaluator, default_sampling, train_supernet
    from hwnas.spaces.base import get_space

    space = get_space("demo")
    ref = json.loads(args.reference.read_text())
    archs = [space.arch_from_dict(a) for a in ref["archs"]]
    runs = np.array([ref["runs"][k] for k in sorted(ref["runs"])], float)
    truth = runs.mean(axis=0)
    ceiling = ref["agreement"]["kendall_tau"]
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for epochs in sorted(args.epochs):
            ckpt = args.workdir / f"supernet-{args.data}-e{epochs}-s{seed}.pt"
            cfg = SupernetConfig(data=args.data, epochs=epochs, seed=seed, sampling=default_sampling(space))
            t = time.perf_counter()
            report = train_supernet(space, ckpt, cfg, resume=True, progress=False, command="bench_demo_epochs")
            seconds = time.perf_counter() - t if report.resumed_from == 0 else report.seconds
            scores = SupernetEvaluator(ckpt).evaluate(archs)
            last = report.history[-1] if report.history else {}
            rows.append({"epochs": epochs, "seed": seed, "train_s": round(seconds, 1),
                         "scores": [round(float(s), 3) for s in scores],
                         "tau_vs_reference": round(kendall_tau(scores, truth), 3),
                         "val_largest": last.get("val_acc_largest"), "val_smallest": last.get("val_acc_smallest"),
                         "score_range": round(float(np.max(scores) - np.min(scores)), 2),
                         "score_sd": round(float(np.std(scores)), 2)})
            print(f"seed {seed}: trained {epochs} epochs in {seconds:.0f} s", file=sys.stderr)
    print(f"demo supernet on {args.data}; {len(archs)} reference archs (their seed-vs-seed tau, the noise "
          f"ceiling: {ceiling:.3f})")
    print(f"{'seed':>4} {'epochs':>6} {'train s':>8} {'tau vs ref':>10} {'tau vs longest':>14} {'range':>6} {'sd':>5} "
          f"{'val largest/smallest':>21}")
    for r in rows:
        longest = [q for q in rows if q["seed"] == r["seed"]][-1]["scores"]
        r["tau_vs_longest"] = round(kendall_tau(r["scores"], longest), 3)
        vals = (f"{r['val_largest']:.1f} / {r['val_smallest']:.1f}" if r["val_largest"] is not None else "-")
        print(f"{r['seed']:>4} {r['epochs']:>6} {r['train_s']:>8.0f} {r['tau_vs_reference']:>10.3f} "
              f"{r['tau_vs_longest']:>14.3f} {r['score_range']:>6.2f} {r['score_sd']:>5.2f} {vals:>21}")
    summary = []
    if len(args.seeds) > 1:
        for epochs in sorted(args.epochs):
            taus = np.array([r["tau_vs_reference"] for r in rows if r["epochs"] == epochs])
            secs = np.array([r["train_s"] for r in rows if r["epochs"] == epochs])
            summary.append({"epochs": epochs, "seeds": len(taus), "tau_mean": round(float(taus.mean()), 3),
                            "tau_sd": round(float(taus.std(ddof=1)), 3), "tau_min": float(taus.min()),
                            "tau_max": float(taus.max()), "train_s_median": float(np.median(secs))})
            s = summary[-1]
            print(f"{epochs} epochs over {s['seeds']} seeds: tau vs reference mean {s['tau_mean']:.3f} (sd "
                  f"{s['tau_sd']:.3f}, {s['tau_min']:.3f} .. {s['tau_max']:.3f}), training median {s['train_s_median']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"data": args.data, "seeds": args.seeds, "reference": str(args.reference),
                                         "reference_seed_tau": ceiling, "rows": rows, "summary": summary,
                                         "command": " ".join(sys.argv)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
