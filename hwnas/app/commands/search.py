"""``hwnas search``, ``score``, ``scale``, ``supernet`` and ``predictor``: the accuracy side and the search."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from hwnas.app.args import (CLIError, DeprecatedFlag, add_quiet, add_space, command_line, dir_path, duration,
                            file_path, finite_positive, fraction_or_percent, key_values, log_of, positive_int,
                            seed_int, space_of)
from hwnas.core import jsonio
from hwnas.core.errors import EXIT_FAIL, EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from hwnas.search import Constraints, SearchConfig, run_search

    space = space_of(args) if args.space_file else None
    constraints = Constraints(budget_ms=args.budget_ms, max_params_m=args.max_params_m,
                              max_memory_mb=args.max_memory_mb, min_accuracy=args.min_accuracy,
                              max_layers=args.max_layers, max_macs_m=args.max_macs_m, margin=args.margin)
    config = SearchConfig(
        evaluator=args.evaluator, evaluator_options=key_values(args.evaluator_option, "--evaluator-option"),
        strategy=args.strategy, strategy_options=key_values(args.strategy_option, "--strategy-option"),
        population=args.population, generations=args.generations, seed=args.seed, constraints=constraints,
        objectives=args.objectives, space=space, workers=args.workers, executor=args.executor,
        ray_address=args.ray_address, max_evaluations=args.max_evaluations, time_budget_s=args.wall_time,
        stop_when_stalled=args.stop_when_stalled, proposals=args.proposals, resume=args.resume,
        salvage=args.salvage, command=command_line(), data=None if args.data == "none" else args.data,  # as score's
        refine=args.refine, refine_epochs=args.refine_epochs)
    result = run_search(args.lut, args.out, config)
    for line in result.lines(out=args.out):
        print(line)
    return EXIT_OK if result.best else EXIT_FAIL


def cmd_score(args: argparse.Namespace) -> int:
    """``hwnas score``: an accuracy evaluator's scores for a list of archs, as ``predict`` gives latencies."""
    from hwnas.evaluate.arch_scores import score_archs
    from hwnas.spaces.archlist import read_arch_list

    space = space_of(args)
    if args.json:
        from hwnas.core.files import refuse_overwriting_inputs

        refuse_overwriting_inputs(args.json, "--json", {"--archs": args.archs})
    archs = read_arch_list(space, args.archs)
    result = score_archs(archs, args.evaluator, key_values(args.evaluator_option, "--evaluator-option"),
                         data=args.data)
    if args.json:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(Path(args.json), jsonio.dumps(result.to_dict(), indent=1) + "\n")
    if not args.quiet or not args.json:
        print("\n".join(result.lines()))
    if args.json:
        print(f"scores written to {args.json}")
    return EXIT_OK


def cmd_scale(args: argparse.Namespace) -> int:
    """``hwnas scale``: compound scaling of a base arch under a latency budget, priced by the LUT."""
    from hwnas.latency.compound import compound_scale
    from hwnas.core.files import atomic_write_text
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor

    from hwnas.core.files import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.out, "--out", {"--arch": args.arch, "--lut": args.lut,
                                                  "--space-file": args.space_file})
    if args.alpha_beta_gamma and args.grid:
        raise CLIError("--alpha-beta-gamma scales with those coefficients only and --grid searches the grid: give one")
    lut = LUT.load(args.lut)
    space = space_of(args, lut)
    predictor = latency_predictor(lut, space)
    base = space.load_arch(args.arch)
    coefficients = None
    if args.alpha_beta_gamma:
        try:
            coefficients = [tuple(float(v) for v in args.alpha_beta_gamma.split(","))]
            assert len(coefficients[0]) == 3
        except (ValueError, AssertionError):
            raise CLIError(f"--alpha-beta-gamma takes three numbers a,b,g (e.g. 1.2,1.1,1.15), got "
                           f"{args.alpha_beta_gamma!r}") from None
    score = None
    if args.evaluator != "none":
        from hwnas.evaluate.arch_scores import score_archs

        score = lambda archs: score_archs(archs, args.evaluator, data=args.data).scores  # noqa: E731
    result = compound_scale(predictor, base, args.budget_ms, coefficients, score,
                            None if args.evaluator == "none" else args.evaluator)
    print("\n".join(result.lines()))
    atomic_write_text(Path(args.out), jsonio.dumps(result.pick.arch.to_dict(), indent=1) + "\n")
    p = result.pick
    print(f"wrote {args.out}: alpha {p.alpha:g}, beta {p.beta:g}, gamma {p.gamma:g}, phi {p.phi:g}; predicted "
          f"{p.predicted_ms:.3f} ms ({lut.label}); measure it: hwnas measure --lut {args.lut} --arch {args.out}")
    return EXIT_OK


def cmd_supernet(args: argparse.Namespace) -> int:
    from hwnas.evaluate.supernet import SupernetConfig, default_sampling, train_supernet

    space = space_of(args)
    cfg = SupernetConfig(data=args.data, split_seed=args.split_seed, data_limit=args.data_limit,
                         epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, random_subnets=args.random_subnets, seed=args.seed,
                         distill=not args.no_distill,
                         # the kind's default: a cell space trains fair (tau 0.692 against 0.511 for uniform on
                         # cell-demo, docs/bench-evaluators.md)
                         sampling=args.sampling or default_sampling(space))
    r = train_supernet(space, args.out, cfg, resume=args.resume, force=args.force, command=command_line(),
                       device=args.compute)
    last = r.history[-1] if r.history else {}
    print(f"supernet {args.out}: {r.epochs_done} epochs" + (f" (resumed after {r.resumed_from})" if r.resumed_from
                                                           else "") + f" in {r.seconds:.0f} s on {r.device}; "
          f"validation accuracy "
          f"largest {last.get('val_acc_largest', float('nan')):.2f} %, smallest "
          f"{last.get('val_acc_smallest', float('nan')):.2f} %")
    print(f"search with it: hwnas search --lut LUT --evaluator supernet --evaluator-option checkpoint={args.out} ...")
    return EXIT_OK


def cmd_predictor(args: argparse.Namespace) -> int:
    from hwnas.evaluate import create_evaluator
    from hwnas.evaluate.predictor import fit_on_evaluator
    from hwnas.evaluate.supernet import read_checkpoint
    from hwnas.spaces.base import space_from_dict

    if args.out.exists() and not args.force:
        raise CLIError(f"{args.out} already exists; choose another --out or add --force")
    space = space_from_dict(read_checkpoint(args.checkpoint)["space"], source=f"{args.checkpoint}: space")
    sn = create_evaluator("supernet", checkpoint=str(args.checkpoint))
    log_of(args)(f"scoring {args.archs} random archs of {space.name!r} with the supernet, then fitting the MLP ...")
    predictor, fit, _ = fit_on_evaluator(space, sn, args.archs, seed=args.seed, epochs=args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(args.out)
    print(f"accuracy predictor {args.out}: trained on {fit.n_train} archs; on {fit.n_val} held out: Kendall tau "
          f"{fit.val_kendall_tau:.3f} vs the supernet, mean abs error {fit.val_mae:.2f} points")
    print(f"search with it: hwnas search --lut LUT --evaluator predictor --evaluator-option path={args.out} ...")
    return EXIT_OK


def parser_search(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("search", cmd_search, "multi-objective search (accuracy up, latency down) under constraints",
            """
hwnas search --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --budget-ms 8 --evaluator proxy:synflow \\
             --strategy nsga2 --population 50 --generations 20 --seed 0 --out runs/mbv3-8ms
hwnas search ... --out runs/mbv3-8ms --resume      # after an interruption: same flags plus --resume""")
    p.add_argument("--lut", type=Path, required=True, help="LUT file (its space is searched)")
    p.add_argument("--space-file", type=Path, help="search this space instead of the LUT's (same blocks needed)")
    p.add_argument("--space", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=dir_path, required=True, help="run directory")
    p.add_argument("--budget-ms", type=finite_positive, help="latency budget (predicted ms on the LUT's device)")
    p.add_argument("--margin", type=fraction_or_percent, metavar="PCT",
                   help="with --budget-ms: a safety margin below the budget, 5%% or 0.05: every pick is predicted "
                        "at or under budget x (1 - margin), so the measured latency has room for the LUT's error "
                        "(recorded in the run; finalize says how far below the budget the pick is) [none]")
    p.add_argument("--evaluator", default="proxy:meco",
                   help="accuracy evaluator (hwnas plugins --kind evaluator); the default is data-free and the best "
                        "measured one on public ground truth (docs/evaluators.md) [proxy:meco]")
    p.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                   help="evaluator setting, repeatable (e.g. path=predictor.pt for --evaluator predictor)")
    p.add_argument("--strategy", default="nsga2",
                   help="nsga2 | evolution | random | reinforce | progressive | predictor-guided | bayesian | differentiable (needs --evaluator supernet), or a plugin's (entry-point group hwnas.strategies); an "
                        "unknown name is refused with the list found [nsga2]")
    p.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="a strategy's own option, e.g. mutate_prob=0.05, crossover_prob=0.8 (nsga2), sample_size=10 "
                        "(evolution), lr=0.005 (reinforce); repeatable; an unknown key is refused with the list")
    p.add_argument("--data", metavar="DATA",
                   help="the images the model is for (fashion-small, an .npz, an image folder ...): an evaluator that "
                        "reads data reads them, and finalize trains and tests the pick on them; checked against the "
                        "space's class count before anything runs; `none`: data-free evaluators only [none]")
    p.add_argument("--refine", type=positive_int, default=0, metavar="K",
                   help="after the search, train the K best archs under the constraints briefly from scratch on "
                        "--data and re-rank them by the mean rank of their score and that accuracy (the "
                        "multi-fidelity scheme of docs/evaluators.md); the pick goes to refine.json, which "
                        "finalize takes [0: off]")
    p.add_argument("--refine-epochs", type=positive_int, default=2, metavar="E",
                   help="epochs of each --refine training [2]")
    p.add_argument("--population", type=positive_int, default=50, help="archs per generation [50]")
    p.add_argument("--generations", type=positive_int, default=20, help="generations to run [20]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the strategy (the same seed, the same run) [0]")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel evaluations: local processes, or Ray actors with --executor ray (there 1 = one "
                        "per CPU of the cluster) [1]")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where evaluations run: this machine, or Ray (pip install 'hwnas[ray]') [local]")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: 'auto' or ray://HOST:PORT joins a cluster [a new local Ray]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--salvage", action="store_true",
                   help="with --resume: if the run's store is damaged, keep it as run.sqlite.damaged, copy what is "
                        "readable into a new one and resume that (no stored evaluation is repeated)")
    p.add_argument("--max-params-m", type=finite_positive, help="constraint: parameters in millions")
    p.add_argument("--max-memory-mb", type=finite_positive, help="constraint: peak activation memory (fp32) in MB")
    p.add_argument("--min-accuracy", type=finite_positive, help="constraint: minimum accuracy (evaluator's score)")
    p.add_argument("--max-layers", type=positive_int, help="constraint: number of blocks")
    p.add_argument("--max-macs-m", type=finite_positive, help="constraint: multiply-accumulates in millions")
    p.add_argument("--objectives", nargs="+", default=["accuracy", "latency_ms"],
                   help="accuracy latency_ms [params_m macs_m memory_mb]: the front, its hypervolume and front.csv "
                        "use every one given")
    p.add_argument("--proposals", choices=["feasible", "any"], default="feasible",
                   help="feasible: every strategy proposes within the constraints known before evaluating (LUT "
                        "latency, params, MACs, memory, layers); any: unchecked, as before [feasible]")
    p.add_argument("--max-evaluations", type=positive_int, metavar="N",
                   help="stop after N evaluations (the last generation is cut to fit)")
    p.add_argument("--wall-time", type=duration, metavar="DURATION",
                   help="stop when the run's wall time (every session, --resume included) reaches it: 90, 90s, 30m, "
                        "2h, 1h30m")
    p.add_argument("--time-budget", dest="wall_time", type=duration, metavar="DURATION", action=DeprecatedFlag,
                   new="--wall-time")
    p.add_argument("--stop-when-stalled", type=positive_int, metavar="K",
                   help="stop when the front's hypervolume has not grown for K generations")
    add_quiet(p)


def parser_supernet(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("supernet", cmd_supernet, "train a weight-sharing supernet of a space on a data set (resumable)",
            """
hwnas supernet --space demo --data digits --epochs 20 --out runs/supernet-demo.pt
hwnas supernet --space cell-demo --data fashion-mnist --data-limit 1000 --epochs 12 --out runs/supernet-cell.pt
hwnas supernet --space-file my_space.json --data ~/data/cifar-10-batches-py --out runs/sn.pt --resume""")
    add_space(p, default="demo")
    p.add_argument("--data", required=True,
                   help="the images to train on (required: hwnas picks none for you): fashion-small, digits "
                        "(embedded), fashion-mnist (Debian's dataset-fashion-mnist), idx:DIR (MNIST-style IDX "
                        "files), an .npz (x: N x H x W x C uint8, y), a CIFAR python directory or an image folder")
    p.add_argument("--split-seed", type=seed_int, default=0, help="seed of the train/val/test split [0]")
    p.add_argument("--data-limit", type=positive_int, metavar="N",
                   help="keep N images per class (stratified, seeded) before the train/val split; an official "
                        "test set is kept whole: quick runs [all]")
    p.add_argument("--epochs", type=positive_int, default=20, help="training epochs [20]")
    p.add_argument("--batch-size", type=positive_int, default=64, help="training batch size [64]")
    p.add_argument("--lr", type=finite_positive, default=0.1, help="learning rate of SGD (Nesterov momentum; scheduled) [0.1]")
    p.add_argument("--random-subnets", type=int, default=2, help="random subnets per step besides largest/smallest")
    p.add_argument("--sampling", choices=["uniform", "connected", "fair"], default=None,
                   help="random subnets: uniform, or connected only (a cell space's archs whose output some "
                        "path reaches), or fair (cell and darts spaces: FairNAS, one subnet per op, every op of every "
                        "edge (darts: of every node's input position) in exactly one of them each step; strict "
                        "fairness needs --no-distill, which drops the largest arch's teacher pass) [fair for a "
                        "cell space, else uniform]")
    p.add_argument("--no-distill", action="store_true",
                   help="random subnets learn the labels, not the largest subnet's soft labels")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the weights and the subnets sampled [0]")
    p.add_argument("--compute", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to train: auto (a CUDA GPU when torch sees one, else every CPU core), cpu, cuda or "
                        "cuda:N [auto]")
    p.add_argument("--device", dest="compute", action=DeprecatedFlag, new="--compute",
                   help="deprecated spelling of --compute (accepted until the next release; --device elsewhere names "
                        "a device agent)")
    p.add_argument("--out", type=file_path, required=True, help="checkpoint file (rewritten every epoch)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--force", action="store_true", help="start over even if --out exists")
    add_quiet(p)


def parser_predictor(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("predictor", cmd_predictor, "fit the accuracy predictor (an MLP on Arch.encode()) to supernet accuracy",
            """
hwnas predictor --checkpoint runs/sn-demo.pt --archs 200 --out runs/predictor-demo.pt
then: hwnas search ... --evaluator predictor --evaluator-option path=runs/predictor-demo.pt""")
    p.add_argument("--checkpoint", type=Path, required=True, help="trained supernet (hwnas supernet)")
    p.add_argument("--archs", type=positive_int, default=200, help="random archs to score and fit on (20 %% held out) [200]")
    p.add_argument("--epochs", type=positive_int, default=300, help="MLP training epochs [300]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the archs scored and of the MLP [0]")
    p.add_argument("--out", type=file_path, required=True, help="predictor file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    add_quiet(p)


def parser_score(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("score", cmd_score, "score a list of architectures with an accuracy evaluator (higher = predicted "
            "more accurate): what predict is for latency",
            """
hwnas score --space cell --archs nb201.txt --data none --json scores.json   # NAS-Bench-201 strings, data-free
hwnas sample --space demo --n 20 --out archs.jsonl && hwnas score --space demo --archs archs.jsonl
hwnas score --space demo --archs archs.jsonl --evaluator proxy:naswot --data fashion-small""")
    add_space(p)
    p.add_argument("--archs", type=Path, required=True, metavar="FILE",
                   help="the archs: a JSON list of arch objects, JSON Lines (hwnas sample --n N --out), or for a cell "
                        "space NAS-Bench-201 strings one a line")
    p.add_argument("--evaluator", help="accuracy evaluator (hwnas plugins --kind evaluator) [proxy:meco, the best "
                                       "measured: docs/evaluators.md]")
    p.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                   help="evaluator setting, repeatable (e.g. checkpoint=sn.pt for --evaluator supernet)")
    p.add_argument("--data", metavar="NAME|none",
                   help="data set for an evaluator that needs data (fashion-small, fashion-mnist, digits, a folder, "
                        "npz:FILE ...); none: data-free evaluators only")
    p.add_argument("--json", type=file_path, metavar="OUT",
                   help="write {evaluator, config, results: [{arch_id, score}, ...]} here, in the order given")
    p.add_argument("--quiet", action="store_true",
                   help="no progress; with --json, print only where the scores went")


def parser_scale(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("scale", cmd_scale, "compound scaling (EfficientNet): grow a base arch's depth, width and resolution "
            "together to the largest step whose LUT-predicted latency fits the budget",
            """
hwnas sample --space network-demo --seed 1 --out base.json
hwnas scale --lut luts/LUT.json --arch base.json --budget-ms 0.1 --out scaled.json          # grid, scored by proxy:meco
hwnas scale --lut luts/LUT.json --arch base.json --budget-ms 0.1 --alpha-beta-gamma 1.2,1.1,1.15 --out scaled.json""")
    p.add_argument("--lut", type=Path, required=True, help="LUT of the space, on the target device")
    add_space(p, default=None)
    p.add_argument("--arch", type=Path, required=True, help="the base architecture (JSON)")
    p.add_argument("--budget-ms", type=finite_positive, required=True, help="latency budget in ms (predicted)")
    p.add_argument("--alpha-beta-gamma", metavar="A,B,G",
                   help="scale with these coefficients only (depth, width, resolution) [the grid with "
                        "alpha*beta^2*gamma^2 within 0.1 of 2]")
    p.add_argument("--grid", action="store_true", help="search the grid (the default without --alpha-beta-gamma)")
    p.add_argument("--evaluator", default="proxy:meco",
                   help="rank the grid's candidates with this evaluator; none: take the one using most of the "
                        "budget [proxy:meco]")
    p.add_argument("--data", help="data set for an evaluator that reads data")
    p.add_argument("--out", type=file_path, required=True, help="the scaled arch (JSON), an arch of the same kind")
    add_quiet(p)
