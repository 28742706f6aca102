#!/usr/bin/env python3
"""Search benchmarks: (a) pure search overhead, (b) hypervolume reached at an equal number of evaluations.

    python tools/bench_search.py --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --seeds 5

(a) nsga2, 500 generations x population 100, latency from the LUT, accuracy from
    an accuracy-predictor MLP (OFA's size: 3 x 400). The search is what is timed:
    ask, predict latency, predict accuracy, tell. Once-for-All's tutorial needs 22 s.
    Then latency predictions per second with predict_many. Only (a):
    python tools/bench_search.py --seeds 0
(b) Objectives: accuracy from an accuracy predictor trained on SynFlow scores of
    sampled archs (a real, cheap, deterministic signal), latency from the LUT,
    budget at the median latency of the space. Every hwnas strategy (--strategies) and
    pymoo's NSGA-II (integer genes, SBX + PM with rounding) get the same evaluations;
    hypervolume of each run's feasible front after 100, 300 and all evaluations, common
    reference point, median over seeds, and each strategy's own seconds per run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.evaluate.predictor import AccuracyPredictor  # noqa: E402
from hwnas.evaluate.proxies import synflow  # noqa: E402
from hwnas.latency.lut import LUT  # noqa: E402
from hwnas.latency.predict import latency_predictor  # noqa: E402
from hwnas.search.problem import Constraints  # noqa: E402
from hwnas.search.pareto import hypervolume_2d, non_dominated_fronts  # noqa: E402
from hwnas.search.strategies import create_strategy  # noqa: E402


def search_loop(strategy, acc_fn, lat_fn, budget, generations):
    archive = {}
    for _ in range(generations):
        archs = getattr(strategy, "propose", strategy.ask)()  # propose: within the checkable constraints
        acc, lat = acc_fn(archs), lat_fn(archs)
        F = np.column_stack([-acc, lat])
        cv = np.maximum(0.0, lat / budget - 1.0) if budget else np.zeros(len(archs))
        strategy.tell(archs, F, cv)
        for a, x, y in zip(archs, acc, lat):
            archive[a.id] = (float(x), float(y))
    return archive


def pymoo_loop(space, acc_fn, lat_fn, budget, population, generations, seed):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    archive = {}
    ub = np.array(space.gene_upper_bounds())

    class ArchProblem(Problem):
        def __init__(self):
            super().__init__(n_var=len(ub), n_obj=2, n_ieq_constr=1, xl=0, xu=ub, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            archs = [space.from_genes(x) for x in np.round(X).astype(int)]
            acc, lat = acc_fn(archs), lat_fn(archs)
            for a, x, y in zip(archs, acc, lat):
                archive[a.id] = (float(x), float(y))
            out["F"] = np.column_stack([-acc, lat])
            out["G"] = (lat - budget)[:, None]

    algo = NSGA2(pop_size=population, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    minimize(ArchProblem(), algo, ("n_gen", generations), seed=seed, verbose=False)
    return archive


def front_hv(archive, budget, ref):
    pts = np.array([(-a, l) for a, l in archive.values() if l <= budget])
    if len(pts) == 0:
        return 0.0
    return hypervolume_2d(pts[non_dominated_fronts(pts)[0]], ref)


def predictions_per_s(predictor, space, n: int = 10_000) -> float:
    archs = [space.sample(random.Random(s)) for s in range(n)]
    predictor.predict_many(archs)  # the first call computes each arch's genes once, as a search does
    times = []
    for _ in range(5):
        t = time.perf_counter()
        predictor.predict_many(archs)
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", type=Path, default=Path("luts/amd-epyc-2c_ort-cpu_mbv3.json"))
    ap.add_argument("--seeds", type=int, default=5, help="(b); 0 skips (b)")
    ap.add_argument("--population", type=int, default=50, help="(b) population")
    ap.add_argument("--generations", type=int, default=20, help="(b) generations")
    ap.add_argument("--train-archs", type=int, default=120, help="(b) archs scored by SynFlow to train the predictor")
    ap.add_argument("--overhead-generations", type=int, default=500, help="(a); 0 skips (a)")
    ap.add_argument("--strategies", nargs="+", default=["nsga2", "evolution", "random", "reinforce", "progressive", "predictor-guided", "bayesian"],
                    help="(b) hwnas strategies to compare with pymoo's NSGA-II [%(default)s]")
    ap.add_argument("--strategy-option", action="append", default=[], metavar="NAME:KEY=VALUE",
                    help="(b) an option of one strategy, e.g. predictor-guided:candidates=60; repeatable")
    ap.add_argument("--unrestricted", action="store_true",
                    help="(b) proposals unchecked against the budget (as search --proposals any)")
    args = ap.parse_args()
    options: dict[str, dict] = {}
    for item in args.strategy_option:
        name, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        for cast in (int, float, str):
            try:
                options.setdefault(name, {})[key] = cast(value)
                break
            except ValueError:
                continue

    lut = LUT.load(args.lut)
    space = lut.search_space()
    lat_pred = latency_predictor(lut, space)

    # (a) overhead ------------------------------------------------------------------
    mlp = AccuracyPredictor(space, seed=0)
    args.overhead_generations = max(0, args.overhead_generations)
    strat = create_strategy("nsga2", space, population=100, seed=0)
    t = time.perf_counter()
    search_loop(strat, mlp.predict, lat_pred.predict_many, None, args.overhead_generations)
    overhead = time.perf_counter() - t
    if args.overhead_generations:
        print(f"(a) nsga2 search overhead, {args.overhead_generations} generations x population 100 "
              f"(LUT latency + accuracy-predictor MLP): {overhead:.2f} s "
              f"({overhead / args.overhead_generations * 1e3:.1f} ms/generation); Once-for-All's tutorial: 22 s")
        print(f"    latency predictions: {predictions_per_s(lat_pred, space):,.0f}/s with predict_many "
              f"(10,000 archs, genes cached, median of 5)")
    if args.seeds <= 0:
        return 0

    # (b) quality -------------------------------------------------------------------
    rng = random.Random(123)
    train = [space.sample(rng) for _ in range(args.train_archs)]
    t = time.perf_counter()
    scores = [synflow(a, seed=0) for a in train]
    acc_model = AccuracyPredictor(space, seed=0)
    rep = acc_model.fit(train, scores, epochs=400, seed=0)
    print(f"\n(b) accuracy predictor trained on SynFlow of {len(train)} archs in {time.perf_counter() - t:.0f} s; "
          f"held-out Kendall tau {rep.val_kendall_tau:.3f}")
    lats = lat_pred.predict_many([space.sample(rng) for _ in range(2000)])
    budget = float(np.median(lats))
    evals = args.population * args.generations
    print(f"budget {budget:.3f} ms (median predicted latency of the space), {evals} evaluations per run, "
          f"{args.seeds} seeds")
    runs: dict[str, list] = {}
    secs: dict[str, list] = {}
    for seed in range(args.seeds):
        for name in args.strategies:
            s = create_strategy(name, space, population=args.population, seed=seed, **options.get(name, {}))
            # as a search run binds it: predictor-guided then prices candidates with the LUT, exactly
            s.bind(predictor=lat_pred, evaluator=None, constraints=Constraints(budget_ms=budget))
            if hasattr(s, "restrict") and not args.unrestricted:  # as a search run restricts it (--proposals feasible)
                from hwnas.search.feasible import Feasibility

                s.restrict(Feasibility(lat_pred, Constraints(budget_ms=budget)))
            t = time.perf_counter()
            runs.setdefault(name, []).append(search_loop(s, acc_model.predict, lat_pred.predict_many, budget,
                                                         args.generations))
            secs.setdefault(name, []).append(time.perf_counter() - t)
        runs.setdefault("pymoo NSGA-II", []).append(
            pymoo_loop(space, acc_model.predict, lat_pred.predict_many, budget, args.population, args.generations,
                       seed))
    all_acc = [a for rs in runs.values() for r in rs for a, _ in r.values()]
    ref = (-min(all_acc), budget)
    marks = sorted({m for m in (100, 300, evals) if m <= evals})

    def hv_at(archive: dict, k: int) -> float:  # the archive is in evaluation order
        return front_hv(dict(list(archive.items())[:k]), budget, ref)

    print("median hypervolume (min-max over seeds) after k evaluations; seconds per run (the strategy's own "
          "overhead: accuracy and latency here cost microseconds); over: evaluations over the budget after the "
          "first generation, summed over seeds (all evaluations in brackets)")
    print(f"{'strategy':16s} " + " ".join(f"{'HV@' + str(m):>24s}" for m in marks) + f" {'s per run':>10s} {'over':>12s}")
    table = {}
    for name, rs in runs.items():
        cells = []
        for m in marks:
            hvs = [hv_at(r, m) for r in rs]
            table.setdefault(name, {})[m] = statistics.median(hvs)
            cells.append(f"{statistics.median(hvs):8.2f} ({min(hvs):6.2f}-{max(hvs):6.2f})")
        took = f"{statistics.median(secs[name]):10.2f}" if name in secs else f"{'':>10s}"
        over = [[lat > budget for _, lat in r.values()] for r in rs]
        later = sum(sum(o[args.population:]) for o in over)
        print(f"{name:16s} " + " ".join(f"{c:>24s}" for c in cells) + f" {took} {later:>5d} ({sum(map(sum, over))})")
    if "pymoo NSGA-II" in table and evals in table["pymoo NSGA-II"]:
        goal = table["pymoo NSGA-II"][evals]
        for name in table:
            hit = next((m for m in marks if table[name][m] >= goal), None)
            print(f"{name:16s} reaches pymoo NSGA-II's HV@{evals} ({goal:.2f}) "
                  + (f"by {hit} evaluations" if hit else "not within the run"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
