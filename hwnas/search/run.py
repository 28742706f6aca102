"""One search run: space + LUT predictor + evaluator + constraints + strategy -> stored, resumable front."""
from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.core.progress import progress as progress_bar, write as write_progress
from hwnas.core import jsonio
from hwnas.core.errors import InputError, SearchError
from hwnas.evaluate import CachedEvaluator, create_evaluator
from hwnas.core.files import atomic_write_text
from hwnas.latency.lut import LUT, content_digest, content_table, describe_change
from hwnas.latency.predict import Predictor, covered_resolutions, latency_predictor
from hwnas.latency.quality import quality_warning
from hwnas.search.dispatch import make_dispatcher
from hwnas.search.feasible import STATIC, Feasibility, outside_counts
from hwnas.search.pareto import best_record, hypervolume, non_dominated_fronts
from hwnas.search.problem import OBJECTIVES, Constraints, Problem
from hwnas.search.records import SearchRecord
from hwnas.search.strategies import create_strategy, strategy_options as options_of
from hwnas.search.termination import Progress, Termination, format_duration
from hwnas.spaces.base import Space, canonical_arch
from hwnas.search.store import (SALVAGE, DiskFullError, RunLock, RunStore, StoreError, damage, is_write_failure,
                         salvage as salvage_store, shorten)


class InfeasibleBudgetError(InputError):
    """No architecture of the space can meet the latency budget."""


@dataclass(frozen=True)
class SearchConfig:
    """Every choice of one search, in one place: what ``hwnas search``'s flags set and ``run_search`` takes
    (by this record or its fields as keywords); ``plan_search`` checks them all before ``--out`` is made."""

    evaluator: str = "proxy:meco"  # the best measured evaluator (docs/evaluators.md)
    evaluator_options: dict[str, Any] | None = None
    strategy: str = "nsga2"
    strategy_options: dict[str, Any] | None = None
    population: int = 50
    generations: int = 20
    seed: int = 0
    constraints: Constraints = field(default_factory=Constraints)
    objectives: Sequence[str] = ("accuracy", "latency_ms")
    space: Space | None = None
    workers: int = 1
    executor: str = "local"
    ray_address: str | None = None
    max_evaluations: int | None = None
    time_budget_s: float | None = None
    stop_when_stalled: int | None = None
    proposals: str = "feasible"
    resume: bool = False
    salvage: bool = False
    progress: bool = True
    command: str | None = None
    data: str | None = None  # the images the search is for: evaluators that read data read them, finalize trains
    # and tests the pick on them (recorded in the run; checked against the space's class count before --out)
    refine: int = 0           # then train the K best feasible archs briefly and re-rank them (hwnas.search.refine)
    refine_epochs: int = 2


@dataclass
class SearchResult:
    out: Path
    front: list[SearchRecord]
    best: SearchRecord | None
    history: list[dict[str, Any]]
    evaluations: int
    seconds: float
    resumed_from: int | None
    stopped: dict[str, Any] | None = None  # why the run stopped (hwnas.search.termination.Stop.to_dict)
    outside: dict[str, Any] | None = None  # evaluations outside each constraint (see outside_summary)
    evaluator: str = "proxy:meco"          # what the accuracy objective holds (score_label)
    lut_notes: str = ""                     # the LUT's precision (int8) and provenance, for the best's line
    refined: Any = None                     # hwnas.search.refine.RefineResult with --refine

    def lines(self, out: str | None = None) -> list[str]:
        """What ``hwnas search`` prints: what was evaluated, the best under the constraints, why it stopped, the
        evaluations outside the constraints, the outputs (under ``out``, as the user wrote it; default ``self.out``)."""
        hv = self.history[-1]["hypervolume"] if self.history else 0.0
        lines = [f"search done: {self.evaluations} archs evaluated in {self.seconds:.1f} s"
                 + (f" (resumed at generation {self.resumed_from})" if self.resumed_from is not None else "")
                 + f"; front of {len(self.front)} feasible archs; hypervolume {hv:.4g}"]
        if self.best:
            b, notes = self.best, self.lut_notes
            lines.append(f"best under the constraints: {b.arch_id}  {score_label(self.evaluator)} {b.accuracy:.4g}  "
                         f"predicted {b.latency_ms:.3f} ms{f' ({notes})' if notes else ''}  {b.params_m:.2f} M params  "
                         f"{b.macs_m:.0f} MMACs")
        else:
            lines.append("no architecture met every constraint; the front is empty (see history.json)")
        if self.stopped:
            lines.append(f"stopped: {self.stopped['message']}")
        if self.outside and self.outside["total"]:
            total, later = self.outside["total"], self.outside["after_first_generation"]
            lines.append("evaluations outside the constraints: " + ", ".join(
                f"{k} {total[k]} ({later[k]} after the first generation)" for k in total))
        if self.refined is not None:
            lines.extend(self.refined.lines())
        lines.append(f"outputs: {self.out if out is None else out}/front.json, front.csv, history.json, best.json, "
                     f"run.sqlite{', refine.json' if self.refined is not None else ''}")
        return lines


def score_label(evaluator: str) -> str:
    """What the accuracy objective holds: an accuracy (%) for trained weights, else the proxy's own score."""
    return f"{evaluator.split(':', 1)[1]} score" if evaluator.startswith("proxy:") else "accuracy"


def lut_notes(lut: LUT) -> str:
    """The LUT's precision (when int8) and provenance, as the best arch's line shows them."""
    return ", ".join(x for x in ("int8" if lut.precision == "int8" else "", lut.provenance) if x)


def check_budget(predictor: Predictor, budget_ms: float | None, margin: float | None = None) -> tuple[Any, float]:
    """``budget_ms``: the limit the search keeps to (the budget less ``margin``, a fraction, when given)."""
    arch, fastest = predictor.fastest()
    if budget_ms is not None and budget_ms < fastest:
        what = (f"the latency budget less the --margin of {margin * 100:g} % ({budget_ms:.4g} ms)" if margin
                else f"the latency budget {budget_ms:g} ms")
        fix = "lower --margin or raise --budget-ms" if margin else f"raise --budget-ms to at least {fastest:.3f}"
        raise InfeasibleBudgetError(
            f"{what} is below the fastest architecture this space allows: "
            f"{fastest:.3f} ms predicted ({predictor.lut.label}; arch {arch.id}, resolution {arch.resolution}, "
            f"{arch.summary}). {fix[0].upper() + fix[1:]}, or search a smaller space.")
    return arch, fastest


def pareto_front(records: Sequence[SearchRecord], problem: Problem) -> list[SearchRecord]:
    """Non-dominated feasible records over every objective of the run (accuracy up, the others down), sorted
    by latency."""
    feas = [r for r in records if problem.constraints.violation(r) <= 0]
    if not feas:
        return []
    front = [feas[i] for i in non_dominated_fronts(problem.F(feas))[0]]
    return sorted(front, key=lambda r: (r.latency_ms, -r.accuracy, r.arch_id))


def hv_columns(objectives: Sequence[str]) -> list[str]:
    """The objectives in the order of the hypervolume's reference point: accuracy, latency, then the others
    as given (so a two-objective run's reference point is what it always was)."""
    return ["accuracy", "latency_ms"] + [o for o in objectives if o not in ("accuracy", "latency_ms")]


def front_hypervolume(front: Sequence[SearchRecord], ref: Sequence[float],
                      objectives: Sequence[str] = ("accuracy", "latency_ms")) -> float:
    """Hypervolume of ``front`` over the objectives ``ref`` has coordinates for (hv_columns), minimised:
    exact for 2 and 3, a seeded Monte Carlo estimate beyond (hwnas.search.pareto.hypervolume)."""
    if not front:
        return 0.0
    cols = hv_columns(objectives)[:len(ref)]
    return hypervolume(np.array([[-OBJECTIVES[o] * getattr(r, o) for o in cols] for r in front], float), ref)


def hv_reference(records: Sequence[SearchRecord], problem: Problem) -> list[float]:
    """Bounds of the hypervolume, fixed at the first generation: the lowest accuracy seen, each cost's
    constraint (else 1.1 x the largest seen)."""
    c = problem.constraints
    limit = {"latency_ms": c.latency_limit_ms, "params_m": c.max_params_m, "macs_m": c.max_macs_m,
             "memory_mb": c.max_memory_mb}
    ref = [-min(r.accuracy for r in records)]
    for o in hv_columns(problem.objectives)[1:]:
        ref.append(limit.get(o) or 1.1 * max(getattr(r, o) for r in records))
    return ref


@dataclass
class SearchPlan:
    """Everything a search needs, built and checked before a file is written."""
    lut: LUT
    space: Space
    predictor: Predictor
    fastest: tuple[Any, float]
    evaluator: Any
    strategy: Any
    problem: Problem
    dispatcher: Any
    config: dict[str, Any]
    lut_table: dict[str, Any] | None = None  # what the LUT's predictions are made of (hwnas.latency.lut.content_table)
    termination: Termination | None = None
    feasibility: Feasibility | None = None   # the constraints checkable before evaluating, when proposals keep to them


def check_population(space: Any, population: int, generations: int, max_evaluations: int | None = None) -> None:
    """A population larger than the space holds archs is refused (each generation would ask for more distinct
    archs than exist); a search of more than 10,000 evaluations (``max_evaluations`` caps them) says what it may
    cost first."""
    size = space.size() if hasattr(space, "size") else None
    if size is not None and population > size:
        raise SearchError(f"--population {population:,} is more than the {size:,} archs space {space.name!r} holds; "
                          f"give --population {size:,} or less (--strategy random with a population of {size:,} "
                          f"and --generations 1 evaluates every arch)")
    total = population * generations
    if max_evaluations is not None and max_evaluations < total:
        total = max_evaluations
        how = f"--max-evaluations; {population:,} per generation, the last one cut to fit"
    else:
        how = f"{population:,} per generation for {generations:,} generations"
    if total > 10_000:
        print(f"note: up to {total:,} evaluations ({how}); each is stored as it finishes, and the bar shows how "
              f"many of the current generation are done", file=sys.stderr)


def check_counts(population: int, generations: int, workers: int, seed: int = 0) -> None:
    """``seed`` >= 0 too: Python's random seeds with the absolute value (seed -1 was the run of seed 1)."""
    for name, value, least in (("population", population, 2), ("generations", generations, 1),
                               ("workers", workers, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise SearchError(f"--{name} must be an integer >= {least}, got {value!r}")


def check_constraints(constraints: Constraints) -> None:
    """Limits are divided by (violation = value / limit - 1): zero or negative ones are typos."""
    for name in ("budget_ms", "max_params_m", "max_memory_mb", "max_layers", "max_macs_m"):
        value = getattr(constraints, name)
        if value is not None and not value > 0:
            raise SearchError(f"--{name.replace('_', '-')} must be > 0, got {value!r}")
    margin = constraints.margin
    if margin is not None and not 0 <= margin < 1:
        raise SearchError(f"--margin must be a fraction of the budget from 0 to below 1 (5% or 0.05), got {margin!r}")
    if margin and constraints.budget_ms is None:
        raise SearchError("--margin keeps the pick below the latency budget by that fraction: give --budget-ms too")


def searchable_space(lut: LUT, lut_path: str | Path, space: Space | None) -> Space:
    """The space restricted to the resolutions the LUT covers completely."""
    space = space or lut.search_space()
    covered = covered_resolutions(lut, space)
    if not covered:
        missing = lut.missing(list(dict.fromkeys(d.key for d in space.all_layers())))
        raise InfeasibleBudgetError(f"{lut_path} covers no resolution of space {space.name!r} completely (it lacks "
                                    f"{len(missing)} of its blocks, e.g. {missing[0] if missing else '?'}); fill "
                                    f"them with {latency_predictor(lut, space).fill_command()}")
    if covered != space.resolutions:
        print(f"note: {lut_path} covers resolutions {list(covered)} only; searching those", file=sys.stderr)
        space = replace(space, resolutions=covered)
    return space


def make_evaluator(name: str, options: dict[str, Any]) -> Any:
    try:
        return create_evaluator(name, **options)
    except TypeError as e:  # an option the evaluator does not take, or lacks one it needs
        raise SearchError(f"--evaluator {name}: its options {sorted(options)} do not fit ({e}); "
                         f"give them as --evaluator-option KEY=VALUE (see `hwnas search --help`)") from None


def with_search_data(data: str | None, evaluator: str, options: dict[str, Any], space: Space) -> dict[str, Any]:
    """The evaluator's options with the search's ``--data`` in them (where it takes a data set), after checking
    the data loads and has one class per output of the space's networks: refused before --out is made."""
    if data is None:
        return options
    given = options.get("data")
    if given is not None and str(given) != data:
        raise SearchError(f"--data {data} and --evaluator-option data={given} name two data sets; give one")
    from hwnas.evaluate.base import EVALUATORS
    from hwnas.evaluate.data import load_data

    load_data(data, int(options.get("split_seed", 0)), limit=options.get("data_limit")).check_space(
        space.in_channels, space.num_classes)
    takes = EVALUATORS.options(evaluator)
    if takes is None or "data" in takes:
        options["data"] = data
    return options


def plan_search(lut_path: str | Path, config: SearchConfig) -> SearchPlan:
    """Check every argument and build every object. Nothing may fail after --out is made: a typo that
    failed later left a run.sqlite that neither the corrected command nor --resume could use."""
    c = config
    (evaluator, evaluator_options, strategy, population, generations, seed, constraints, objectives, space, workers,
     strategy_options, proposals) = (c.evaluator, c.evaluator_options, c.strategy, c.population, c.generations,
                                     c.seed, c.constraints, c.objectives, c.space, c.workers, c.strategy_options,
                                     c.proposals)
    check_counts(population, generations, workers, seed)
    termination = Termination.of(generations, c.max_evaluations, c.time_budget_s, c.stop_when_stalled)
    if proposals not in PROPOSALS:
        raise SearchError(f"--proposals must be one of {', '.join(PROPOSALS)}, got {proposals!r}")
    check_constraints(constraints)
    lut = LUT.load(lut_path)
    if warning := quality_warning(lut):  # its build found it noisy: every latency below is no better than that
        print(warning, file=sys.stderr)
    space = searchable_space(lut, lut_path, space)
    check_population(space, population, generations, c.max_evaluations)
    predictor = latency_predictor(lut, space)
    fastest = check_budget(predictor, constraints.latency_limit_ms, constraints.margin)
    feasibility = Feasibility(predictor, constraints)
    check_static_limits(feasibility, space, seed)
    problem = Problem(predictor, None, constraints, objectives)
    strat = create_strategy(strategy, space, population=population, seed=seed, **(strategy_options or {}))
    dispatcher = make_dispatcher(workers, c.executor, c.ray_address)
    evaluator_options = with_search_data(c.data, evaluator, dict(evaluator_options or {}), space)
    inner = make_evaluator(evaluator, evaluator_options)
    if getattr(inner, "relative", False):
        raise SearchError(f"--evaluator {evaluator} ranks a list relative to itself, so a search cannot compare its "
                          f"scores across generations; search with a cheap evaluator and re-rank the best with "
                          f"--refine K (e.g. --evaluator proxy:naswot --refine 8)")
    if c.refine:
        from hwnas.search.refine import check_refine

        check_refine(c.refine, c.refine_epochs, c.data or evaluator_options.get("data"))
    if hasattr(inner, "check_space"):  # e.g. a supernet checkpoint of another space: refused before --out is made
        inner.check_space(space)
    strat.bind(predictor=predictor, evaluator=inner, constraints=constraints, objectives=tuple(objectives))
    table = content_table(lut)
    config = {"lut": str(lut_path), "lut_fingerprint": lut.fingerprint, "lut_profiler": lut.profiler,
              "lut_provenance": lut.provenance or None,
              # the LUT's content, not only its path: a LUT rewritten under the run is refused by a resume,
              # and finalize and report say so (see open_run)
              "lut_digest": content_digest(table),
              # an int8 LUT prices int8 models: finalize then judges the int8 model (fp32, the default, not written,
              # so runs from before int8 LUTs resume)
              **({"lut_precision": lut.precision} if lut.precision != "fp32" else {}),
              "space": space.to_dict(), "evaluator": evaluator, "evaluator_config": inner.config(),
              "strategy": strategy, "strategy_options": strategy_options or {},
              # what every option not given meant when the run began: a later hwnas may change a default, and
              # a resume must not silently continue with another model (see open_run)
              "strategy_defaults": json_values(options_of(strategy)), "population": population,
              "seed": seed, "constraints": constraints.to_dict(), "objectives": list(objectives)}
    if c.data is not None:  # only when given (the configs of runs before --data are as they were)
        config["data"] = c.data
    if feasibility.active:  # only where it changes what is proposed (unconstrained runs' configs are as they were)
        config["proposals"] = proposals
    return SearchPlan(lut, space, predictor, fastest, inner, strat, problem, dispatcher, config, table, termination,
                      feasibility if feasibility.active and proposals == "feasible" else None)


PROPOSALS = ("feasible", "any")


def check_static_limits(feasibility: Feasibility, space: Any, seed: int) -> None:
    """A limit the space's smallest arch misses can be met by none (params, MACs, memory and layers grow with
    every choice): refused, as a budget below the fastest arch is. When no arch of 200 sampled meets the
    checkable limits together, say so: proposals are then found by repair, not by sampling."""
    limits = {k: v for k, v in feasibility.limits.items() if k != "budget_ms"}
    if not feasibility.active:
        return
    small = SearchRecord.of(space.smallest(), feasibility.predictor.predict(space.smallest()), 0.0)
    for key, limit in limits.items():
        value = getattr(small, STATIC[key])
        if value > limit:
            raise InfeasibleBudgetError(
                f"--{key.replace('_', '-')} {limit:g} is below the smallest architecture of space {space.name!r}: "
                f"{value:g} ({small.arch_id}); raise it to at least {value:g}, or search a smaller space")
    import random

    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(200)]
    ok = int((feasibility.violations(archs) <= 0).sum())
    if ok == 0:
        lat = feasibility.predictor.predict_many(archs)
        print(f"note: none of 200 random archs of space {space.name!r} meets the constraints "
              f"{ {k: v for k, v in feasibility.limits.items()} } (their predicted latency {lat.min():.3f} to "
              f"{lat.max():.3f} ms; the fastest arch {feasibility.predictor.fastest()[1]:.3f} ms): the feasible region "
              f"is tiny, proposals are repaired into it with bounded effort and some evaluations may fall outside",
              file=sys.stderr)


def check_out(out: Path, resume: bool) -> None:
    """What can be refused before --out is touched."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; a search run is a directory: choose another --out")
    if resume and not (out / "run.sqlite").exists():
        raise StoreError(f"--resume: no run to resume in {out} (no run.sqlite)")


def open_run(store: RunStore, config: dict[str, Any], resume: bool, lut_table: dict[str, Any] | None = None) -> None:
    """Record the configuration of a new run, or check that a resumed one was started with the same
    (and the same LUT content: ``lut_table`` is recorded beside it, to say what changed)."""
    from hwnas import __version__

    old = store.get_meta("config")
    if resume and isinstance(old, dict) and "proposals" not in old:
        config.pop("proposals", None)  # a run from before proposals kept to the constraints continues as it began
    if resume and old is not None:
        options = ("strategy_options", "strategy_defaults", "lut_digest")
        diff = sorted(k for k in set(old) | set(config) if k not in options and old.get(k) != config.get(k))
        check_lut_digest(store, old, config, diff, lut_table)
        if "strategy_defaults" not in old:  # a run from before defaults were recorded: the given options must match
            if old.get("strategy_options", {}) != config.get("strategy_options", {}):
                diff.append("strategy_options")
        if diff:
            raise StoreError(f"--resume with other settings than the stored run ({', '.join(diff)} differ); "
                             f"use the original flags or a new --out")
        if "strategy_defaults" in old:
            check_strategy_options(old, config)
    elif resume and store.last_generation() is not None:
        raise StoreError(f"{store.path} has generations but no run configuration; the store is damaged: "
                         f"start a new run with another --out")
    else:  # new, or killed before its configuration was saved: nothing to keep
        store.set_meta("config", config)
        if lut_table is not None:
            store.set_meta("lut_table", lut_table)
        store.set_meta("versions", {"hwnas": __version__, **{k: config["lut_fingerprint"].get(k) for k in
                                                             ("python", "torch", "onnxruntime", "numpy")}})
    store.mark_incomplete()


def check_lut_digest(store: RunStore, old: dict[str, Any], new: dict[str, Any], diff: list[str],
                     lut_table: dict[str, Any] | None) -> None:
    """A resume reads the LUT at the path the run began with: its content must be what the run's stored
    predictions came from. A run from before digests were recorded cannot be checked: a note says so."""
    if "lut_digest" not in old:
        print(f"note: {store.path.parent} was made before runs recorded their LUT's digest: a LUT changed since "
              f"cannot be detected on this resume", file=sys.stderr)
        return
    if old["lut_digest"] == new.get("lut_digest"):
        return
    if "lut" in diff:  # another LUT path given: the settings message says so
        diff.append("lut_digest")
        return
    what = describe_change(store.get_meta("lut_table"), lut_table) if lut_table is not None else "its content differs"
    raise StoreError(f"--resume: the LUT {old['lut']} is not the one this run began with: {what} (content digest "
                     f"{old['lut_digest']} then, {new.get('lut_digest')} now), so the stored archs' predicted "
                     f"latencies are not this LUT's. Put the original LUT back at {old['lut']} and run the same "
                     f"command, or search with this LUT in a new --out")


def json_values(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` as it reads back from the store (tuples become lists), so a comparison after a resume is fair."""
    import json

    return json.loads(jsonio.dumps(d))


def check_strategy_options(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A resumed run continues with exactly the options it began with, defaults included: when this hwnas's
    defaults differ from those the run recorded, say which and how to keep the old ones."""
    began = {**old["strategy_defaults"], **old.get("strategy_options", {})}
    now = {**new["strategy_defaults"], **json_values(new.get("strategy_options", {}))}
    changed = sorted(k for k in set(began) | set(now) if began.get(k) != now.get(k))
    if not changed:
        return
    was = ", ".join(f"{k}={began[k]!r}" if k in began else f"{k} (none)" for k in changed)
    keep = " ".join(f"--strategy-option {k}={began[k]}" for k in changed if k in began and began[k] is not None)
    given = json_values(new.get("strategy_options", {}))
    drop = " ".join(f"--strategy-option {k}={given[k]}" for k in changed if k in given and began.get(k) is None)
    fix = " and ".join(([f"add: {keep}"] if keep else []) + ([f"drop {drop} (the run began without it)"] if drop
                                                              else [])) or "use the original flags"
    raise StoreError(f"--resume: this run began with strategy options {was}, and they would be "
                     f"{', '.join(f'{k}={now.get(k)!r}' for k in changed)} now (given differently, or a default "
                     f"changed since). To continue it exactly, {fix}")


def discard_new_run(out: Path, made_out: bool) -> None:
    """A new run that failed before its first generation holds nothing worth a --resume: remove it, so the
    corrected command can use the same --out."""
    for name in ("run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "run.lock"):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass
    if made_out:
        try:
            out.rmdir()
        except OSError:
            pass


def run_search(lut_path: str | Path, out: str | Path, config: SearchConfig | None = None, /,
               **options: Any) -> SearchResult:
    """Search the LUT's space into ``out`` as ``config`` says (a :class:`SearchConfig`; ``options``: its fields by
    name, over ``config`` or the defaults).

    ``executor``: ``local`` (``workers`` 1: this process; more: a process pool) or ``ray`` (a local Ray,
    or the cluster at ``ray_address``). Every finished evaluation is stored at once; ``resume`` continues
    a killed run without evaluating anything again. ``salvage`` (a resume): a damaged run store is kept
    aside and what is readable of it copied into a new one, which is then resumed.

    The run stops at the first of: ``generations``, ``max_evaluations`` (distinct archs evaluated; the last
    generation is cut to fit), ``time_budget_s`` (wall time of all its sessions, between generations),
    ``stop_when_stalled`` generations without hypervolume growth; why is in ``SearchResult.stopped``.
    ``proposals``: ``feasible`` keeps every strategy's proposals within the constraints checkable before
    evaluating (LUT latency, params, MACs, memory, layers); ``any`` lets every strategy propose from its own distribution unchecked (archs outside are evaluated and
    ranked by their violation), as runs did before this option."""
    start = time.perf_counter()
    config = replace(config, **options) if config is not None else SearchConfig(**options)
    out = Path(out)
    salvage, progress, command = config.salvage, config.progress, config.command
    resume = config.resume or salvage
    plan = plan_search(lut_path, config)
    check_out(out, resume)
    made_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "run.sqlite"
    with RunLock(out):
        if db.exists() and not resume:
            problem = damage(db)
            if problem:
                raise StoreError(f"{out} holds a run whose store is damaged ({shorten(problem)}); {SALVAGE}")
            raise StoreError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
        if salvage:
            salvage_damaged(db)
        new = not db.exists()
        try:
            store = RunStore(db)
        except DiskFullError as e:
            if new:  # what the failed creation left (a 4 KB run.sqlite, its -wal, run.lock) would block the retry
                discard_new_run(out, made_out)
            raise disk_full(out, e, kept=not new) from None
        try:
            open_run(store, plan.config, resume, plan.lut_table)
            store.set_meta("commands", (store.get_meta("commands") or []) + [command or " ".join(sys.argv)])
            try:
                result = search_loop(store, plan, out, plan.termination, progress, start)
            finally:
                plan.dispatcher.close()
        except Exception as e:
            # a run that stored nothing is removed; one whose first generation failed part-way keeps what
            # finished, so --resume evaluates none of it again
            kept = True
            if new and store.last_generation() is None and not store.evals(plan.config["evaluator"]):
                store.close()
                discard_new_run(out, made_out)
                kept = False
            if is_write_failure(e):
                raise disk_full(out, e, kept) from None
            raise
        finally:
            store.close()
        if config.refine:
            from hwnas.search.refine import refine_run

            result.refined = refine_run(out, config.refine, config.refine_epochs, config.data, config.seed,
                                        command=command, log=print if progress else (lambda s: None))
        return result


def disk_full(out: Path, e: BaseException, kept: bool) -> DiskFullError:
    """A write refused mid-search (the disk full): every committed generation and stored evaluation is intact,
    and a resume continues to the very front an uninterrupted run reaches."""
    why = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
    if kept:
        return DiskFullError(f"could not write the run in {out} ({why}); what was saved is kept: free space, then run "
                             f"the same command with --resume (it continues to the same front)")
    return DiskFullError(f"could not write the run in {out} ({why}); nothing was kept: free space, then run the "
                         f"same command")


def salvage_damaged(db: Path) -> None:
    """``--salvage``: a damaged store is replaced by what is readable of it (hwnas.search.store.salvage); an intact
    one is resumed as it is."""
    problem = damage(db)
    if problem is None:
        print(f"note: {db} is intact; nothing to salvage, resuming it", file=sys.stderr)
        return
    kept = salvage_store(db)
    print(f"note: {db} was damaged ({shorten(problem)}); kept as {kept['damaged']}; copied {kept['evals']} "
          f"evaluation(s) and {kept['failures']} failure(s) into a new run.sqlite"
          + ("" if kept["config"] else " (its configuration was unreadable: the flags given are recorded)")
          + "; the generations are replayed from the stored evaluations", file=sys.stderr)


def search_loop(store: RunStore, plan: SearchPlan, out: Path, termination: Termination, progress: bool,
                start: float) -> SearchResult:
    """Generations from the last committed one until ``termination`` says stop, each committed in one
    transaction with the run's elapsed time and its counts of evaluations outside the constraints; the
    outputs, the reason it stopped and the complete marker at the end."""
    fastest_arch, fastest_ms = plan.fastest
    store.set_meta("fastest", {"arch": fastest_arch.to_dict(), "latency_ms": fastest_ms})
    store.set_meta("termination", termination.to_dict())
    evaluator, strategy, problem = plan.config["evaluator"], plan.config["strategy"], plan.problem
    known = store.evals(evaluator)
    failures = store.failures(evaluator)
    session = time.perf_counter()
    before = float(store.get_meta("elapsed_s") or 0.0)  # the sessions before this one (a resumed run)

    def elapsed() -> float:
        return before + time.perf_counter() - session

    def on_failure(arch: Any, message: str) -> None:
        store.add_failure(evaluator, arch.to_dict(), arch.id, message)
        write_progress(f"evaluation failed, arch {arch.id} recorded as failed (not retried): {message}", shown["bar"])

    shown: dict[str, Any] = {"bar": None, "done": 0}

    def on_result(archs: Any, accs: Any) -> None:
        store.add_evals(evaluator, problem.records(archs, accs))
        if termination.to_dict().get("time_budget_s") is not None:  # a killed generation's time still counts
            store.set_meta("elapsed_s", elapsed())
        shown["done"] += len(archs)
        if shown["bar"] is not None:  # a large generation shows its progress, not only a bar at 0/1
            shown["bar"].set_postfix_str(f"{shown['done']:,} evaluated this generation", refresh=True)

    cached = CachedEvaluator(plan.evaluator, {**{k: v.accuracy for k, v in known.items()},
                                              **{k: float("nan") for k in failures}},
                             dispatcher=plan.dispatcher, on_failure=on_failure, on_result=on_result)
    problem.evaluator = cached
    strat = plan.strategy
    if plan.feasibility is not None and plan.config.get("proposals") == "feasible":
        strat.restrict(plan.feasibility)
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
    outside = store.get_meta("outside") or {}  # generation -> {constraint: evaluations outside it}
    hvs = [h["hypervolume"] for h in store.history()]
    total = termination.criteria[0].n
    bar = progress_bar(desc=f"search {strategy}", unit="gen", disable=not progress, dynamic_ncols=True,
                       initial=first_gen, total=total, every=1)  # a line per generation where progress is lines
    shown["bar"] = bar if progress else None
    gen = first_gen
    # the archs of the committed generations, failed ones too: what the evaluation cap counts (an evaluation
    # stored by a generation killed part-way counts when its generation is replayed, as it did uninterrupted)
    evaluated = set(store.evaluated_ids())
    takes_limit = "limit" in inspect.signature(strat.propose).parameters
    try:  # closed on an error too: the error line must start a line of its own, not follow the bar
        while True:
            done = Progress(gen, len(evaluated), elapsed(), hvs)
            stop = termination.stop(done)
            if stop is not None:
                break
            shown["done"] = 0
            left = termination.remaining(done)
            # no more than can be evaluated: the cap holds before the work (a plugin's own propose() may not take it)
            archs = strat.propose(left) if takes_limit else strat.propose()
            # equivalent proposals (a cell's dead edges) are evaluated, stored and listed once, as their
            # canonical arch; the strategy is told about what it proposed
            networks = [canonical_arch(a) for a in archs]
            if left is not None:  # the evaluation cap: the proposals that would evaluate past it are not made
                keep, new = [], set()
                for a, n in zip(archs, networks):
                    if n.id not in evaluated and n.id not in new:
                        if len(new) == left:
                            continue
                        new.add(n.id)
                    keep.append((a, n))
                archs, networks = [a for a, _ in keep], [n for _, n in keep]
            accs = cached.evaluate(networks)
            records = problem.records(networks, accs)
            store.add_evals(evaluator, [r for r in records if not r.failed])
            F, cv = problem.F(records), problem.cv(records)
            strat.tell(archs, F, cv)
            members = [(r.arch_id, float(v)) for r, v in zip(records, cv)]
            # once per network (recorded in the store's failures when it failed, and then in no front)
            fresh = [r for r in {r.arch_id: r for r in records}.values() if r.arch_id not in evaluated]
            evaluated.update(r.arch_id for r in records)
            records = list({r.arch_id: r for r in records if not r.failed}.values())
            archive.update({r.arch_id: r for r in records})
            if ref is None and records:
                ref = hv_reference(records, problem)
                store.set_meta("hv_ref", ref)
            on_front = {f.arch_id for f in front}
            front = pareto_front(front + [r for r in records if r.arch_id not in on_front], problem)
            hv = front_hypervolume(front, tuple(ref), problem.objectives) if ref is not None else 0.0
            hvs.append(hv)
            best_acc = max((r.accuracy for r in front), default=None)
            outside[str(gen)] = outside_counts([r for r in fresh if not r.failed], problem.constraints)
            store.commit_generation(gen, strategy, members, strat.state_dict(), hv, best_acc, len(archive),
                                    meta={"elapsed_s": elapsed(), "outside": outside})
            bar.set_postfix(best=f"{best_acc:.4g}" if best_acc is not None else "none feasible", hv=f"{hv:.4g}",
                            refresh=False)
            bar.update(1)  # after the postfix: where progress is lines, the generation's line carries it
            gen += 1
    finally:
        bar.close()
    stopped = {**stop.to_dict(), "generations": gen, "evaluations": len(evaluated), "elapsed_s": elapsed()}
    store.set_meta("stopped", stopped)
    # the store keeps arch dicts with sorted keys: the outputs list every arch in the space's own order,
    # resumed or not
    front = [replace(r, arch=plan.space.arch_from_dict(r.arch).to_dict()) for r in front]
    best = best_record(front)
    history = store.history()
    for h in history:
        if str(h["generation"]) in outside:
            h["outside"] = outside[str(h["generation"])]
    result = SearchResult(out, front, best, history, len(archive), time.perf_counter() - start, resumed_from,
                          stopped, outside_summary(outside, problem.constraints), evaluator, lut_notes(plan.lut))
    write_outputs(result, plan.config, store)
    store.mark_complete({"generations": len(history), "evaluations": len(archive)})
    return result


def outside_summary(outside: dict[str, dict[str, int]], constraints: Constraints) -> dict[str, Any]:
    """Per constraint: evaluations outside it in all, and after the first generation (the strategies'
    goal there is 0 for every constraint checkable before evaluating)."""
    keys = list(constraints.to_dict())
    gens = sorted(outside, key=int)
    total = {k: sum(outside[g].get(k, 0) for g in gens) for k in keys}
    later = {k: sum(outside[g].get(k, 0) for g in gens[1:]) for k in keys}
    return {"total": total, "after_first_generation": later}


def write_outputs(result: SearchResult, config: dict[str, Any], store: RunStore) -> None:
    out = result.out
    made = {"config": config, "versions": store.get_meta("versions"), "commands": store.get_meta("commands")}
    failures = store.failures(config["evaluator"])
    made.update({"objectives": config.get("objectives"), "stopped": result.stopped,
                 "outside_constraints": result.outside})
    atomic_write_text(out / "front.json", jsonio.dumps({**made, "front": [r.to_dict() for r in result.front],
                                                        **({"failed_evaluations": failures} if failures else {})},
                                                       indent=1))
    atomic_write_text(out / "history.json", jsonio.dumps({**made, "history": result.history}, indent=1))
    best = result.best.to_dict() if result.best is not None else None
    atomic_write_text(out / "best.json", jsonio.dumps({**made, "best": best}, indent=1))
    fields = ["arch_id", "accuracy", "latency_ms", "params_m", "macs_m", "memory_mb", "layers", "arch"]
    lines = [",".join(fields)]
    for r in result.front:
        row = [r.arch_id, *(f"{getattr(r, f):.6g}" for f in fields[1:-1]), jsonio.dumps(r.arch, sort_keys=True)]
        lines.append(",".join(row[:-1]) + ',"' + row[-1].replace('"', '""') + '"')
    atomic_write_text(out / "front.csv", "\n".join(lines) + "\n")
