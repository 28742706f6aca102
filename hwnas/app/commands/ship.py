"""``hwnas finalize``, ``report`` and ``demo``: what a team ships, and the whole pipeline end to end."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from hwnas.app.args import (add_device_flags, add_quiet, command_line, dir_path, fraction_or_percent, log_of,
                            positive_int, seed_int)
from hwnas.core.errors import EXIT_FAIL, EXIT_OK, EXIT_UNCERTAIN


def cmd_finalize(args: argparse.Namespace) -> int:
    from hwnas.finalize import finalize
    from hwnas.finalize.source import TRAIN_EPOCHS

    r = finalize(args.run, args.out, pick=args.pick, finetune_epochs=args.finetune_epochs,
                 train_epochs=args.train_epochs or TRAIN_EPOCHS, int8=args.int8,
                 profiler=args.profiler, force=args.force, processes=args.processes, checkpoint=args.checkpoint,
                 data=args.data, lut=args.lut, command=command_line(), accept_lut_change=args.accept_lut_change,
                 max_cv=args.max_cv, log=log_of(args))
    for line in r.lines():
        print(line)
    return EXIT_FAIL if r.latency.failed else EXIT_UNCERTAIN if r.latency.uncertain else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from hwnas.finalize.report import rerender

    for path in rerender(args.path):
        print(f"wrote {path}" if path.exists() else f"(not drawn: {path.name})")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from hwnas.app.demo import run_demo

    summary = run_demo(args.out, profiler=args.profiler, epochs=args.epochs, population=args.population,
                       generations=args.generations, seed=args.seed, force=args.force, command=command_line(),
                       quick=args.quick, space_name=args.space, data=args.data, full_lut=args.full_lut,
                       refine_top=args.refine, refine_epochs=args.refine_epochs, log=log_of(args))
    if args.quiet:  # the log said nothing: the result in one line
        print(f"{summary['verdict']}: pick {summary['pick']}, measured {summary['measured_ms']:.3f} ms (budget "
              f"{summary['budget_ms']:g} ms), test accuracy {summary['test_accuracy']:.2f} %; report: "
              f"{summary['report']}")
    return {"FAIL": EXIT_FAIL, "UNCERTAIN": EXIT_UNCERTAIN}.get(summary["verdict"], EXIT_OK)


def parser_finalize(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("finalize", cmd_finalize, "export a searched arch to ONNX, prove parity, and MEASURE it against the budget",
            """
hwnas finalize runs/demo/search --out dist/demo
hwnas finalize runs/mbv3-8ms --pick 3fa2c81b09de --int8 --finetune-epochs 2 --out dist/mbv3-8ms --force
exit code: 0 PASS (or no budget), 1 FAIL (measured over the budget, or ONNX parity failed), 2 bad input,
5 UNCERTAIN (measured twice, too noisy to tell: the budget inside the measurement's p10-p90, or its CV too high)""")
    p.add_argument("run", type=Path, help="run directory of `hwnas search`")
    p.add_argument("--out", type=dir_path, required=True, help="bundle directory (model.onnx, model.ort, report.*)")
    p.add_argument("--pick", default="best", help="best (most accurate feasible arch) or an ARCH_ID of the run")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune the inherited weights E epochs [0]")
    p.add_argument("--train-epochs", type=positive_int, metavar="E",
                   help="for a run with no supernet: train the pick from scratch at most E epochs (early stopping "
                        "on the validation split) [12, the reference recipe's]")
    p.add_argument("--int8", action="store_true",
                   help="also write a static QDQ int8 model, with accuracy and latency (implied by an int8 LUT, "
                        "whose int8 model is then the one judged)")
    p.add_argument("--profiler", help="measure with this profiler [the LUT's]")
    p.add_argument("--processes", type=int, default=2,
                   help="measure in N fresh processes, keep the lowest median (as the LUT was built) [2]")
    p.add_argument("--max-cv", type=fraction_or_percent, default=0.10, metavar="PCT",
                   help="a measurement whose robust CV is over this (or whose p10-p90 holds the budget, or whose CV "
                        "is over 25 %%) cannot decide the verdict: it is measured once more, then UNCERTAIN (exit 5) "
                        "if still so; 10%% or 0.10 [10%%]")
    p.add_argument("--checkpoint", type=Path, help="supernet checkpoint [the run's]")
    p.add_argument("--data", help="data set to test (and, for a run with no supernet, train) the pick on [the run's]")
    p.add_argument("--lut", type=Path, help="LUT file [the run's]")
    p.add_argument("--force", action="store_true",
                   help="replace the bundle in --out as a whole (swapped in only once complete)")
    add_device_flags(p)
    p.add_argument("--accept-lut-change", action="store_true",
                   help="go on with a LUT whose content is not the one the run was searched with (refused "
                        "otherwise); the report records the mismatch")
    add_quiet(p)


def parser_report(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("report", cmd_report, "re-render report.md and pareto.png of a finalize bundle or a search run",
            """
hwnas report dist/demo          # a finalize bundle (has report.json)
hwnas report runs/demo/search   # a search run""")
    p.add_argument("path", type=Path, help="a finalize bundle (with report.json) or a search run directory")


def parser_demo(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("demo", cmd_demo, "the whole pipeline on embedded Fashion-MNIST: LUT, accuracy, search, finalize",
            """
hwnas demo                       # ~3-4 min on 2 CPU cores (plus ~2 min when a LUT must be transferred); outputs in runs/demo
hwnas demo --space demo --out runs/demo-mbv3   # the MobileNetV3-style space with a 10-epoch supernet (~4-5 min)
hwnas demo --out runs/demo2 --refine 8 --profiler ort-mobile
(interrupted? run the same command again: every step resumes)""")
    p.add_argument("--out", type=dir_path, default=Path("runs/demo"), help="directory of every step's outputs [runs/demo]")
    p.add_argument("--profiler", default="ort-cpu", help="ort-cpu | ort-mobile | torch-cpu | torch-cuda | torch-cuda-graph [ort-cpu]")
    p.add_argument("--space", default="network-demo", choices=["network-demo", "demo", "cell-demo"],
                   help="network-demo (stages of conv / depthwise-separable / bottleneck / inverted-residual / "
                        "attention layers; accuracy by NASWOT, then the best under the budget trained briefly and "
                        "re-ranked), demo (MobileNetV3-style blocks) or cell-demo (NAS-Bench-201-style cells): "
                        "accuracy by a supernet [network-demo]")
    p.add_argument("--data", default="fashion-small",
                   help="fashion-small (embedded stratified Fashion-MNIST subset, 600 images per class) or digits "
                        "(embedded, 8x8), or any --data of `hwnas supernet` [fashion-small]")
    p.add_argument("--epochs", type=positive_int, default=10, help="supernet training epochs (demo, cell-demo) [10]")
    p.add_argument("--refine", type=positive_int, default=6, metavar="K",
                   help="network-demo: candidates under the budget trained briefly and re-ranked [6]")
    p.add_argument("--refine-epochs", type=positive_int, default=2, metavar="E",
                   help="network-demo: epochs of each of those trainings [2]")
    p.add_argument("--population", type=positive_int, default=24, help="search: archs per generation [24]")
    p.add_argument("--generations", type=positive_int, default=10, help="search: generations [10]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every step (supernet or refine, search) [0]")
    p.add_argument("--force", action="store_true", help="start every step over")
    p.add_argument("--quick", action="store_true",
                   help="if a LUT must be built here: short timing runs, one pass (~4x faster to build, noisier); "
                        "for previews")
    p.add_argument("--full-lut", action="store_true",
                   help="when no shipped LUT matches this machine, build one block by block (minutes) instead of "
                        "transferring one from a shipped LUT of the same profiler and space (about a minute)")
    add_device_flags(p)
    add_quiet(p)
