#!/usr/bin/env python3
"""Supernet training step and evaluation forward in NCHW vs channels-last (NHWC) on this CPU.

    python tools/bench_layout.py                    # demo and cell-demo, 30 steps each
    python tools/bench_layout.py --spaces demo --steps 60 --json docs/bench_layout.json

Why it exists: hwnas.evaluate.device.cpu_layout puts CPU supernets in channels-last because oneDNN's
convolution backward is slow in NCHW for MBConv's depthwise convolutions. This prints, per space and
layout, the median milliseconds of one training step as train_supernet runs it (the largest arch on the
labels, then the smallest and 2 random students distilled from it, one SGD step) and of one evaluation
forward (batch 64, the largest arch), with the ratio. Both layouts train from the same seed on the same
batches. CPU-bound: run nothing else beside it.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_layout(space_name: str, data: str, channels_last: bool, steps: int, warmup: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from hwnas.evaluate.data import load_data
    from hwnas.evaluate.supernet import build_supernet, default_sampling, soft_cross_entropy
    from hwnas.spaces.base import get_space

    space = get_space(space_name)
    splits = load_data(data, 0)
    torch.manual_seed(0)
    net = build_supernet(space)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    largest, ch = net.largest(), space.in_channels
    rng, g = random.Random(0), torch.Generator().manual_seed(0)
    sampling = default_sampling(space)
    train_ms, eval_ms = [], []
    batches = splits.batches("train", 64, g, augment=True, drop_last=True)
    for i in range(warmup + steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = splits.batches("train", 64, g, augment=True, drop_last=True)
            x, y = next(batches)
        net.train()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = net(splits.inputs(x, largest.resolution, ch), largest)
        F.cross_entropy(logits, y, label_smoothing=0.1).backward()
        teacher = F.softmax(logits.detach(), dim=1)
        for sub in net.students(rng, 2, sampling):
            soft_cross_entropy(net(splits.inputs(x, sub.resolution, ch), sub), teacher).backward()
        opt.step()
        step = time.perf_counter() - t
        net.eval()
        with torch.no_grad():
            xi = splits.inputs(x, largest.resolution, ch)
            t = time.perf_counter()
            net(xi, largest)
            fwd = time.perf_counter() - t
        if i >= warmup:
            train_ms.append(1000 * step)
            eval_ms.append(1000 * fwd)
    return {"train_step_ms": statistics.median(train_ms), "eval_forward_ms": statistics.median(eval_ms)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spaces", nargs="+", default=["demo", "cell-demo"])
    ap.add_argument("--data", default="fashion-small", help="the demo's data [fashion-small]")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per layout [30]")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import torch

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.steps} steps")
    print(f"{'space':<10} {'layout':<14} {'train step ms':>14} {'eval fwd ms':>12}")
    for name in args.spaces:
        got = {}
        for cl in (False, True):
            r = time_layout(name, args.data, cl, args.steps, args.warmup)
            got[cl] = r
            layout = "channels-last" if cl else "NCHW"
            rows.append({"space": name, "layout": layout, **{k: round(v, 2) for k, v in r.items()}})
            print(f"{name:<10} {layout:<14} {r['train_step_ms']:>14.1f} {r['eval_forward_ms']:>12.1f}")
        print(f"{name:<10} {'NCHW / NHWC':<14} {got[False]['train_step_ms'] / got[True]['train_step_ms']:>13.2f}x "
              f"{got[False]['eval_forward_ms'] / got[True]['eval_forward_ms']:>11.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                         "steps": args.steps, "data": args.data, "rows": rows,
                                         "command": " ".join(sys.argv)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
