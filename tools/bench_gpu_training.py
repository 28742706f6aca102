#!/usr/bin/env python3
"""The GPU paths of training, run once for real: supernet steps/s on a device, and a short ``--compute auto`` training.

    python tools/bench_gpu_training.py supernet --compute cuda --out steps_cuda.json   # one epoch, steps/s
    python tools/bench_gpu_training.py supernet --compute cpu --out steps_cpu.json
    python tools/bench_gpu_training.py train --out train_auto.json                      # train_arch, device auto

steps/s is the epoch's training steps over the whole ``train_supernet`` call (its validation included), so
the GPU and CPU figures are of the same work. Used by scripts/gpu_device_run.sh; writes one JSON object.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.core import jsonio  # noqa: E402


def supernet(args: argparse.Namespace) -> dict:
    from hwnas.evaluate.data import load_data
    from hwnas.evaluate.supernet import SupernetConfig, train_supernet
    from hwnas.spaces.base import get_space

    space = get_space(args.space)
    cfg = SupernetConfig(data=args.data, epochs=1, batch_size=args.batch_size, data_limit=args.data_limit)
    steps = max(1, len(load_data(cfg.data, cfg.split_seed, limit=cfg.data_limit).train) // cfg.batch_size)
    ckpt = args.out.with_suffix(".pt")
    r = train_supernet(space, ckpt, cfg, force=True, progress=False, command=" ".join(sys.argv), device=args.compute)
    ckpt.unlink(missing_ok=True)  # the weights are not the point; the speed is
    return {"what": "supernet, 1 epoch", "space": args.space, "data": args.data, "batch_size": args.batch_size,
            "device": r.device, "steps": steps, "seconds": round(r.seconds, 3),
            "steps_per_s": round(steps / r.seconds, 3), "val_acc_largest": r.history[-1].get("val_acc_largest")}


def train(args: argparse.Namespace) -> dict:
    from hwnas.evaluate.data import load_data
    from hwnas.evaluate.device import device_of, resolve_device
    from hwnas.evaluate.train import train_arch
    from hwnas.spaces.base import get_space

    space = get_space(args.space)
    t0 = time.perf_counter()
    r = train_arch(space.smallest(), load_data(args.data, limit=args.data_limit), max_epochs=args.epochs,
                   patience=0, device="auto")
    return {"what": f"train_arch, smallest {args.space} arch, {args.epochs} epoch(s), --compute auto",
            "resolved_device": str(resolve_device("auto")), "model_returned_on": str(device_of(r.model)),
            "seconds": round(time.perf_counter() - t0, 3), "best_val_acc": r.best_val_acc,
            "epochs_run": r.epochs_run}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["supernet", "train"])
    ap.add_argument("--compute", default="auto", help="supernet: where to train: auto, cpu, cuda [auto]")
    ap.add_argument("--space", default="demo")
    ap.add_argument("--data", default="fashion-small")
    ap.add_argument("--data-limit", type=int, default=None, help="images per class [all]")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1, help="train: epochs [1]")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = supernet(args) if args.what == "supernet" else train(args)
    args.out.write_text(jsonio.dumps(result, indent=1))
    print(jsonio.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
