"""One search run: space + LUT predictor + evaluator + constraints + strategy -> stored, resumable front."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from hwnas.errors import InputError
from hwnas.evaluate import CachedEvaluator, create_evaluator
from hwnas.lut import LUT, atomic_write_text
from hwnas.predict import LatencyPredictor, covered_resolutions
from hwnas.search.dispatch import make_dispatcher
from hwnas.search.pareto import hypervolume_2d, non_dominated_fronts
from hwnas.search.problem import Constraints, Problem
from hwnas.search.strategies import create_strategy
from hwnas.space import SearchSpace
from hwnas.store import RunStore, StoreError


class InfeasibleBudgetError(InputError):
    """No architecture of the space can meet the latency budget."""


@dataclass
class SearchResult:
    out: Path
    front: list[dict[str, Any]]
    best: dict[str, Any] | None
    history: list[dict[str, Any]]
    evaluations: int
    seconds: float
    resumed_from: int | None


def check_budget(predictor: LatencyPredictor, budget_ms: float | None) -> tuple[Any, float]:
    arch, fastest = predictor.fastest()
    if budget_ms is not None and budget_ms < fastest:
        raise InfeasibleBudgetError(
            f"the latency budget {budget_ms:g} ms is below the fastest architecture this space allows: "
            f"{fastest:.3f} ms predicted ({predictor.lut.label}; arch {arch.id}, resolution {arch.resolution}, "
            f"depths {list(arch.depths)}). Raise --budget-ms to at least {fastest:.3f}, or search a smaller space.")
    return arch, fastest


def pareto_front(records: Sequence[dict[str, Any]], problem: Problem) -> list[dict[str, Any]]:
    """Non-dominated feasible records on (accuracy up, latency down), sorted by latency."""
    feas = [r for r in records if problem.constraints.violation(r) <= 0]
    if not feas:
        return []
    F = np.array([[-r["accuracy"], r["latency_ms"]] for r in feas])
    front = [feas[i] for i in non_dominated_fronts(F)[0]]
    return sorted(front, key=lambda r: (r["latency_ms"], -r["accuracy"], r["arch_id"]))


def front_hypervolume(front: Sequence[dict[str, Any]], ref: tuple[float, float]) -> float:
    if not front:
        return 0.0
    return hypervolume_2d(np.array([[-r["accuracy"], r["latency_ms"]] for r in front]), ref)


def run_search(lut_path: str | Path, out: str | Path, *, evaluator: str = "proxy:synflow",
               evaluator_options: dict[str, Any] | None = None, strategy: str = "nsga2", population: int = 50,
               generations: int = 20, seed: int = 0, constraints: Constraints = Constraints(),
               objectives: Sequence[str] = ("accuracy", "latency_ms"), space: SearchSpace | None = None,
               resume: bool = False, workers: int = 1, progress: bool = True, command: str | None = None,
               strategy_options: dict[str, Any] | None = None) -> SearchResult:
    start = time.perf_counter()
    out = Path(out)
    lut = LUT.load(lut_path)
    space = space or lut.search_space()
    covered = covered_resolutions(lut, space)
    if not covered:
        raise InfeasibleBudgetError(f"{lut_path} covers no resolution of space {space.name!r} completely; "
                                    f"build it with {LatencyPredictor(lut, space).fill_command()}")
    if covered != space.resolutions:
        print(f"note: {lut_path} covers resolutions {list(covered)} only; searching those", file=sys.stderr)
        space = replace(space, resolutions=covered)
    predictor = LatencyPredictor(lut, space)
    fastest_arch, fastest_ms = check_budget(predictor, constraints.budget_ms)
    inner = create_evaluator(evaluator, **(evaluator_options or {}))
    config = {"lut": str(lut_path), "lut_fingerprint": lut.fingerprint, "lut_profiler": lut.profiler,
              "space": space.to_dict(), "evaluator": evaluator, "evaluator_config": inner.config(),
              "strategy": strategy, "strategy_options": strategy_options or {}, "population": population,
              "seed": seed, "constraints": constraints.to_dict(), "objectives": list(objectives)}
    db = out / "run.sqlite"
    if db.exists() and not resume:
        raise StoreError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
    if resume and not db.exists():
        raise StoreError(f"--resume: no run to resume in {out} (no run.sqlite)")
    store = RunStore(db)
    try:
        if resume:
            old = store.get_meta("config")
            if old is None:
                raise StoreError(f"{db} has no run configuration; it is not a complete run store")
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            if diff:
                raise StoreError(f"--resume with other settings than the stored run ({', '.join(diff)} differ); "
                                 f"use the original flags or a new --out")
        else:
            from hwnas import __version__

            store.set_meta("config", config)
            store.set_meta("versions", {"hwnas": __version__, **{k: lut.fingerprint.get(k) for k in
                                                                 ("python", "torch", "onnxruntime", "numpy")}})
        store.set_meta("commands", (store.get_meta("commands") or []) + [command or " ".join(sys.argv)])
        store.set_meta("fastest", {"arch": fastest_arch.to_dict(), "latency_ms": fastest_ms})

        problem = Problem(predictor, None, constraints, objectives)
        known = store.evals(evaluator)
        cached = CachedEvaluator(inner, {k: v["accuracy"] for k, v in known.items()},
                                 dispatcher=make_dispatcher(workers))
        problem.evaluator = cached
        strat = create_strategy(strategy, space, population=population, seed=seed, **(strategy_options or {}))
        first_gen, resumed_from = 0, None
        last = store.last_generation()
        if last is not None:
            strat.load_state_dict(last[1])
            first_gen = resumed_from = last[0] + 1
        archive = {aid: known[aid] for aid in store.evaluated_ids() if aid in known}
        # the front of a union is the front of (old front + new points): keep it incrementally, so a
        # long run never sorts its whole archive (50,000 archs would need a 2.5 GB dominance matrix)
        front = pareto_front(list(archive.values()), problem)
        ref = store.get_meta("hv_ref")
        bar = tqdm(range(first_gen, generations), desc=f"search {strategy}", unit="gen", disable=not progress,
                   dynamic_ncols=True, initial=first_gen, total=generations)
        for gen in bar:
            archs = strat.ask()
            accs = cached.evaluate(archs)
            records = problem.records(archs, accs)
            store.add_evals(evaluator, records)
            F, cv = problem.F(records), problem.cv(records)
            strat.tell(archs, F, cv)
            archive.update({r["arch_id"]: r for r in records})
            if ref is None:
                lat_ref = constraints.budget_ms or 1.1 * max(r["latency_ms"] for r in records)
                ref = [-min(r["accuracy"] for r in records), lat_ref]
                store.set_meta("hv_ref", ref)
            on_front = {f["arch_id"] for f in front}
            front = pareto_front(front + [r for r in records if r["arch_id"] not in on_front], problem)
            hv = front_hypervolume(front, tuple(ref))
            best_acc = max((r["accuracy"] for r in front), default=None)
            store.commit_generation(gen, strategy, [(r["arch_id"], float(v)) for r, v in zip(records, cv)],
                                    strat.state_dict(), hv, best_acc, len(archive))
            bar.set_postfix(best=f"{best_acc:.4g}" if best_acc is not None else "none feasible", hv=f"{hv:.4g}",
                            refresh=False)
        bar.close()
        best = max(front, key=lambda r: (r["accuracy"], -r["latency_ms"])) if front else None
        history = store.history()
        result = SearchResult(out, front, best, history, len(archive), time.perf_counter() - start, resumed_from)
        write_outputs(result, config, store)
        return result
    finally:
        store.close()


def write_outputs(result: SearchResult, config: dict[str, Any], store: RunStore) -> None:
    out = result.out
    made = {"config": config, "versions": store.get_meta("versions"), "commands": store.get_meta("commands")}
    atomic_write_text(out / "front.json", json.dumps({**made, "front": result.front}, indent=1))
    atomic_write_text(out / "history.json", json.dumps({**made, "history": result.history}, indent=1))
    atomic_write_text(out / "best.json", json.dumps({**made, "best": result.best}, indent=1))
    fields = ["arch_id", "accuracy", "latency_ms", "params_m", "macs_m", "memory_mb", "layers", "arch"]
    lines = [",".join(fields)]
    for r in result.front:
        row = [r["arch_id"], *(f"{r[f]:.6g}" for f in fields[1:-1]), json.dumps(r["arch"], sort_keys=True)]
        lines.append(",".join(row[:-1]) + ',"' + row[-1].replace('"', '""') + '"')
    atomic_write_text(out / "front.csv", "\n".join(lines) + "\n")
