#!/usr/bin/env python3
"""Rank quality of the accuracy evaluators against short training, on real data.

    python tools/bench_evaluators.py [--data fashion-mnist] [--data-limit 1000] [--space demo] [--n 30]
                                     [--seed 0] [--reference-seeds 2] [--json out.json]

Samples N architectures of the space; training from scratch (tools/bench_reference.py's
recipe, whose trainings it reuses) is the reference; prints Kendall tau and Spearman rho of the supernet, the accuracy
predictor (trained on supernet accuracy of other archs) and each zero-cost proxy
against it, seconds per evaluation, and the supernet training's peak RSS.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.core import jsonio
from hwnas.bench.evaluators import format_table, run_evaluator_bench  # noqa: E402
from hwnas.bench.reference import Recipe, workers_default  # noqa: E402
from hwnas.evaluate.supernet import SupernetConfig  # noqa: E402
from hwnas.core.metrics import kendall_tau  # noqa: E402
from hwnas.spaces.base import get_space  # noqa: E402


def connected_taus(space, bench) -> dict:
    """A cell space's disconnected archs (no path to the output: a constant network) left out: how each
    evaluator ranks the rest. Empty when every arch is connected (MBv3 spaces always are)."""
    archs = [space.arch_from_dict(d) for d in bench.archs]
    keep = [i for i, arch in enumerate(archs) if getattr(arch, "connected", True)]
    if len(keep) == len(archs) or len(keep) < 3:
        return {}
    ref = [bench.reference[i] for i in keep]
    return {"n": len(keep), "disconnected": len(archs) - len(keep),
            "kendall_tau": {name: kendall_tau([s[i] for i in keep], ref) for name, s in bench.scores.items()}}


def shipped_lut(space) -> Path | None:
    """A shipped ort-cpu LUT of ``space`` (by name): the latency the bins are drawn from when --lut is not given."""
    root = Path(__file__).resolve().parents[1]
    found = sorted((root / "luts").glob(f"*_ort-cpu_{space.name}.json"))
    return found[0].relative_to(root) if found else None  # as a user types it (the bench runs from the root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--data-limit", type=int, default=1000, help="images per class kept before the train/val split; 0 = all [1000]")
    ap.add_argument("--space", default="demo")
    ap.add_argument("--resolutions", type=int, nargs="+", help="replace the space's input resolutions (e.g. 32)")
    ap.add_argument("--n", type=int, default=30, help="architectures to rank [30]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the arch sample, the supernet and the proxies")
    ap.add_argument("--supernet-epochs", type=int, default=20)
    ap.add_argument("--random-subnets", type=int, default=2, help="supernet: random subnets per step [2]")
    ap.add_argument("--supernet-lr", type=float, default=0.1, help="supernet: peak learning rate [0.1]")
    ap.add_argument("--supernet-sampling", choices=["uniform", "connected", "fair"], default="uniform",
                    help="supernet: random subnets drawn uniformly, or connected ones only (cell spaces), or fair "
                         "(cell spaces: FairNAS, every op of every edge once a step) [uniform]")
    ap.add_argument("--supernet-no-distill", action="store_true",
                    help="supernet: random subnets learn the labels, not the largest subnet's soft labels")
    ap.add_argument("--bn-batches", type=int, default=4,
                    help="supernet evaluator: training batches each arch's BN statistics are recalibrated on [4]")
    ap.add_argument("--train-epochs", type=int, default=12, help="reference: epochs of training [12]")
    ap.add_argument("--patience", type=int, default=0, help="reference: early stopping patience; 0 = none [0]")
    ap.add_argument("--reference-part", default="test", choices=["val", "test"],
                    help="split the reference's final models are scored on [test]")
    ap.add_argument("--predictor-archs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=workers_default(), help="processes for the reference")
    ap.add_argument("--reference-seeds", type=int, default=2,
                    help="train the reference with this many seeds; >= 2 also reports the noise ceiling [2]")
    ap.add_argument("--workdir", default="runs/bench_reference",
                    help="supernet checkpoints and reference trainings go here, and are reused")
    ap.add_argument("--reference-dir", help="reference trainings are saved here and reused [--workdir]")
    ap.add_argument("--json", help="write every score and the table here")
    ap.add_argument("--lut", type=Path, help="LUT of the space pricing the archs for the tau within latency bins "
                                             "[a shipped ort-cpu LUT of the space, if there is one]")
    ap.add_argument("--multifidelity", type=int, default=0, metavar="EPOCHS",
                    help="add the multifidelity evaluator's row: NASWOT and an EPOCHS-epoch training [0: off]")
    ap.add_argument("--no-supernet", action="store_true", help="skip the supernet and the predictor (proxies only)")
    ap.add_argument("--no-predictor", action="store_true",
                    help="skip the accuracy predictor (it scores --predictor-archs archs with the supernet: minutes)")
    ap.add_argument("--saved-only", action="store_true",
                    help="train no reference: rank the archs bench_reference.py already trained with every seed")
    a = ap.parse_args()
    space = get_space(a.space)
    if a.resolutions:
        space = space.with_resolutions(a.resolutions)
    recipe = Recipe(a.data, a.data_limit or None, a.train_epochs, patience=a.patience, part=a.reference_part)
    supernet = SupernetConfig(data=a.data, data_limit=a.data_limit or None, epochs=a.supernet_epochs,
                              random_subnets=a.random_subnets, seed=a.seed, lr=a.supernet_lr,
                              sampling=a.supernet_sampling, distill=not a.supernet_no_distill)
    bench = run_evaluator_bench(space, Path(a.workdir), recipe, a.n, a.seed, supernet, a.predictor_archs, a.workers,
                                a.reference_seeds, with_supernet=not a.no_supernet, saved_only=a.saved_only,
                                with_predictor=not a.no_predictor,
                                bn_batches=a.bn_batches,
                                reference_dir=Path(a.reference_dir) if a.reference_dir else None,
                                latency_lut=a.lut or shipped_lut(space), multifidelity_epochs=a.multifidelity)
    print(f"\n{bench.n_archs} archs of space {space.name!r} on {bench.data!r}, seed {a.seed}; reference: {recipe.describe()}")
    print(format_table(bench))
    if bench.supernet.get("peak_rss_mib"):
        print(f"supernet training: {bench.supernet['train_seconds']} s, peak RSS {bench.supernet['peak_rss_mib']} MiB")
    connected = connected_taus(space, bench)
    if connected:
        print(f"\nwithout the {connected['disconnected']} disconnected archs ({connected['n']} left): Kendall tau "
              + ", ".join(f"{k} {v:.3f}" for k, v in connected["kendall_tau"].items()))
    if a.json:
        blob = {**bench.to_dict(), **({"connected_only": connected} if connected else {})}
        Path(a.json).write_text(jsonio.dumps(blob, indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
