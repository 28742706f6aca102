"""How well do the cheap evaluators rank architectures? Short training is the reference.

Used by ``tools/bench_evaluators.py``; kept in the library so the numbers in the
README come from code that is tested.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwnas.evaluate import create_evaluator
from hwnas.evaluate.predictor import fit_on_evaluator
from hwnas.evaluate.proxies import PROXIES, SIZE_PROXIES
from hwnas.core.errors import InputError
from hwnas.bench.reference import Recipe, agreement, saved_reference, train_reference
from hwnas.evaluate.supernet import SupernetConfig, read_checkpoint, train_supernet
from hwnas.evaluate.vote import VoteEvaluator, rank_vote
from hwnas.core.metrics import kendall_tau, kendall_tau_near, kendall_tau_top, kendall_tau_within, pairs_near, spearman_rho
from hwnas.spaces.base import Space, layer_costs
from hwnas.profilers._host import peak_rss_mib

# MeCo with size, by the vote's equal mean of percentiles (no weight to tune): what MeCo sees beyond size, with
# size's robustness on small data where MeCo alone trails it (cell-demo)
SIZE_VOTE = ("meco", "macs")


@dataclass
class Row:
    evaluator: str
    kendall_tau: float
    spearman_rho: float
    secs_per_eval: float
    note: str = ""
    tau_within_resolution: float | None = None  # pairs of the same input resolution only
    tau_top10: float | None = None              # among the reference's 10 best
    tau_near_latency: float | None = None       # pairs within 5 % of each other's predicted latency only


@dataclass
class EvaluatorBench:
    space: str
    data: str
    n_archs: int
    seed: int
    rows: list[Row]
    reference: list[float]
    scores: dict[str, list[float]]
    supernet: dict[str, Any] = field(default_factory=dict)
    archs: list[dict[str, Any]] = field(default_factory=list)
    reference_runs: list[list[float]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)  # the LUT that priced the archs for the bins, and pairs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digested(cfg: SupernetConfig) -> dict[str, Any]:
    """The config as the checkpoint's file name digests it: fields added since the first benchmarks count
    only when they differ from their default, so an earlier checkpoint keeps its name and is reused."""
    added = {"distill": True, "sampling": "uniform"}
    return {k: v for k, v in asdict(cfg).items() if k not in added or v != added[k]}


def _supernet_rows(space: Space, workdir: Path, cfg: SupernetConfig, archs: list, predictor_archs: int,
                   seed: int, scores: dict[str, list[float]], secs: dict[str, float], notes: dict[str, str],
                   log: Callable[[str], None], bn_batches: int = 4, with_predictor: bool = True) -> dict[str, Any]:
    """1. the supernet (trained once per config into ``workdir``) and 2. the accuracy predictor fitted on
    its scores of other archs; fills ``scores``/``secs``/``notes``, returns what the training was."""
    n_archs = len(archs)
    # 1. supernet (first, so the process's peak RSS is the training's)
    digest = hashlib.sha256(json.dumps([space.to_dict(), _digested(cfg)], sort_keys=True).encode()).hexdigest()[:10]
    ckpt = workdir / f"supernet-{digest}.pt"
    t = time.perf_counter()
    done = ckpt.exists() and read_checkpoint(ckpt)["epochs_done"] == cfg.epochs
    if not done:
        train_supernet(space, ckpt, cfg, resume=True)
    train_s = time.perf_counter() - t
    sn_info = {"checkpoint": str(ckpt), "config": asdict(cfg), "epochs": cfg.epochs,
               "train_seconds": None if done else round(train_s, 1),
               "peak_rss_mib": round(peak_rss_mib(), 1) if not done else None,
               "history": read_checkpoint(ckpt)["history"][-1], "bn_batches": bn_batches}
    log(f"supernet: {cfg.epochs} epochs" + ("" if done else f" in {train_s:.0f} s, peak RSS "
                                                             f"{sn_info['peak_rss_mib']:.0f} MiB"))
    sn = create_evaluator("supernet", checkpoint=str(ckpt), bn_batches=bn_batches)
    t = time.perf_counter()
    scores["supernet"] = sn.evaluate(archs)
    secs["supernet"] = (time.perf_counter() - t) / n_archs

    # 2. accuracy predictor trained on supernet accuracy of other archs
    if not with_predictor:
        return sn_info
    t = time.perf_counter()
    predictor, fit, _ = fit_on_evaluator(space, sn, predictor_archs, seed=seed + 1, exclude=archs)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores["predictor"] = [float(v) for v in predictor.predict(archs)]
    secs["predictor"] = (time.perf_counter() - t) / n_archs
    notes["predictor"] = (f"MLP on {fit.n_train} supernet-scored archs ({fit_s:.0f} s to label and fit); "
                          f"held-out tau vs supernet {fit.val_kendall_tau:.3f}")
    log(f"predictor: {notes['predictor']}")
    return sn_info


def run_evaluator_bench(space: Space, workdir: Path, recipe: Recipe = Recipe(), n_archs: int = 30, seed: int = 0,
                        supernet: SupernetConfig | None = None, predictor_archs: int = 200, workers: int = 2,
                        reference_seeds: int = 2, log: Callable[[str], None] = print,
                        vote_reference: int = 64, with_supernet: bool = True,
                        saved_only: bool = False, bn_batches: int = 4,
                        reference_dir: Path | None = None, with_predictor: bool = True,
                        latency_lut: Path | None = None, multifidelity_epochs: int = 0) -> EvaluatorBench:
    """Rank ``n_archs`` archs of ``space`` with every evaluator and compare with the reference (``recipe``,
    the mean over ``reference_seeds`` training seeds 0, 1, ...). With 2+ seeds the tau between two seeds'
    rankings is reported too: the noise ceiling no cheap evaluator can be expected to beat.

    ``supernet`` (default: 20 epochs on the recipe's data and data limit) is trained once into
    ``workdir`` (a file per config), and reference trainings are saved there as they come
    (hwnas.bench.reference): a second bench with the same settings trains nothing again.
    ``with_supernet=False`` skips the supernet and the predictor (the proxies alone are cheap),
    ``with_predictor=False`` the predictor only (it scores ``predictor_archs`` more archs with the supernet);
    ``saved_only`` trains no reference: the archs some earlier (maybe cut-short) run trained with every
    seed are ranked. ``bn_batches``: training batches the supernet recalibrates each arch's BN on.
    ``reference_dir``: where the reference trainings are saved, if not in ``workdir`` (a committed
    reference, say, while the supernet checkpoints go to a scratch folder)."""
    workdir.mkdir(parents=True, exist_ok=True)
    archs = space.sample_distinct(n_archs, random.Random(seed))
    seeds = list(range(reference_seeds))
    if saved_only:
        archs, by_seed, cpu_s = saved_reference(archs, recipe, seeds, reference_dir or workdir)
        if len(archs) < 3:
            raise InputError(f"only {len(archs)} of the {n_archs} archs have every reference seed saved in "
                             f"{reference_dir or workdir}; run tools/bench_reference.py (same recipe) first")
        log(f"reference: the {len(archs)} of {n_archs} archs saved with all {reference_seeds} seeds")
        n_archs = len(archs)
    data, limit = recipe.data, recipe.data_limit
    cfg = supernet or SupernetConfig(data=data, data_limit=limit, epochs=20, seed=seed)
    scores: dict[str, list[float]] = {}
    secs: dict[str, float] = {}
    notes: dict[str, str] = {}

    sn_info: dict[str, Any] = {}
    if with_supernet:
        sn_info = _supernet_rows(space, workdir, cfg, archs, predictor_archs, seed, scores, secs, notes, log,
                                 bn_batches, with_predictor)

    # 3. zero-cost proxies, their vote, and the free baseline every evaluator must beat
    votes = {"vote": {}, f"vote {','.join(SIZE_VOTE)}": {"proxies": ",".join(SIZE_VOTE)}}
    for name in [*(p for p in PROXIES if p not in SIZE_PROXIES), *votes]:  # size: the baselines below
        data_free = name in PROXIES and not PROXIES[name][1]
        opts = {"seed": seed} if data_free else {"seed": seed, "data": data, "data_limit": limit}
        if name in votes:
            opts.update(votes[name], reference=vote_reference)
        ev = create_evaluator(f"proxy:{name.split()[0]}", **opts)  # synflow is data-free
        ev.evaluate(archs[:1])  # warm-up (the vote scores its reference sample here)
        t = time.perf_counter()
        scores[f"proxy:{name}"] = ev.evaluate(archs)
        secs[f"proxy:{name}"] = (time.perf_counter() - t) / n_archs
    members = VoteEvaluator().members
    scores["rank vote over these archs"] = [float(v) for v in rank_vote({p: scores[f"proxy:{p}"] for p in members})]
    secs["rank vote over these archs"] = sum(secs[f"proxy:{p}"] for p in members)
    notes["rank vote over these archs"] = f"mean rank of {', '.join(members)} (the literature's vote)"
    notes["proxy:vote"] = (f"mean percentile of {', '.join(members)} vs {vote_reference} reference archs "
                           f"(usable in a search)")
    notes[f"proxy:vote {','.join(SIZE_VOTE)}"] = (f"mean percentile of {' and '.join(SIZE_VOTE)} vs "
                                                  f"{vote_reference} reference archs: MeCo combined with size")
    if multifidelity_epochs:
        ev = create_evaluator("multifidelity", data=data, data_limit=limit, epochs=multifidelity_epochs, seed=seed)
        t = time.perf_counter()
        scores["multifidelity"] = ev.evaluate(archs)
        secs["multifidelity"] = (time.perf_counter() - t) / n_archs
        notes["multifidelity"] = (f"mean rank of naswot and a {multifidelity_epochs}-epoch training (validation split) "
                                  f"over these archs")
    costs = [layer_costs(a.layers()) for a in archs]
    for name, values, note in (("MACs alone", [float(m) for m, _ in costs], "size baseline: more MACs, higher score"),
                               ("params alone", [float(p) for _, p in costs], "size baseline: more parameters"),
                               ("resolution alone", [float(a.resolution) for a in archs],
                                "free baseline: bigger input, higher score")):
        scores[name], secs[name], notes[name] = values, 0.0, note
    latency: dict[str, Any] = {}
    predicted = None
    if latency_lut is not None:
        from hwnas.latency.lut import LUT
        from hwnas.latency.predict import latency_predictor

        lut = LUT.load(latency_lut)
        predicted = [float(v) for v in latency_predictor(lut, space).predict_many(archs)]
        latency = {"lut": str(latency_lut), "predicted_ms": predicted, "pairs_within_5pct": pairs_near(predicted)}

    # 4. reference: training from scratch, once per seed, saved as it comes
    if not saved_only:
        log(f"reference: {n_archs} archs x {reference_seeds} seed(s): {recipe.describe()}; {workers} worker(s)")
        by_seed, cpu_s = train_reference(archs, recipe, seeds, workers, cache=reference_dir or workdir)
    runs = [by_seed[k] for k in seeds]
    secs["train"] = cpu_s
    reference = [sum(v) / len(v) for v in zip(*runs)]

    res = [a.resolution for a in archs]
    near = (lambda s: kendall_tau_near(s, reference, predicted)) if predicted else (lambda s: None)
    rows = [Row(name, kendall_tau(s, reference), spearman_rho(s, reference), secs[name], notes.get(name, ""),
                kendall_tau_within(s, reference, res), kendall_tau_top(s, reference, 10), near(s))
            for name, s in scores.items()]
    label = "train (reference)" if reference_seeds == 1 else f"train, mean of {reference_seeds} seeds (reference)"
    rows.append(Row(label, 1.0, 1.0, secs["train"], recipe.describe()))
    if reference_seeds >= 2:
        ag = agreement(by_seed, archs)
        rows.append(Row("train seed 0 vs 1" if reference_seeds == 2 else f"train, seeds pairwise ({reference_seeds})",
                        ag.kendall_tau, ag.spearman_rho, secs["train"],
                        f"noise ceiling: seed noise sd {ag.seed_noise_sd:.2f} points, spread between archs sd "
                        f"{ag.arch_spread_sd:.2f}", ag.tau_within_resolution, ag.tau_top10,
                        kendall_tau_near(runs[0], runs[1], predicted) if predicted else None))
    return EvaluatorBench(space.name, data if limit is None else f"{data} ({limit}/class)", n_archs, seed, rows,
                          reference, scores, sn_info, [a.to_dict() for a in archs], runs, asdict(recipe), latency)


def format_table(bench: EvaluatorBench) -> str:
    w = max(len("evaluator"), *(len(r.evaluator) for r in bench.rows))
    lines = [f"{'evaluator':<{w}} {'Kendall tau':>11} {'same-res tau':>12} {'top-10 tau':>10} {'Spearman':>9} "
             f"{'±5% lat. tau':>12} {'s/eval':>9}", "-" * (w + 69)]

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    for r in bench.rows:
        lines.append(f"{r.evaluator:<{w}} {r.kendall_tau:>11.3f} {fmt(r.tau_within_resolution):>12} "
                     f"{fmt(r.tau_top10):>10} {r.spearman_rho:>9.3f} {fmt(r.tau_near_latency):>12} "
                     f"{r.secs_per_eval:>9.3f}")
    ref = bench.reference
    if bench.latency:
        lines.append(f"±5% lat. tau: pairs within 5 % of each other's latency predicted by {bench.latency['lut']} "
                     f"only ({bench.latency['pairs_within_5pct']} pairs)")
    lines.append(f"reference accuracy ({bench.recipe.get('part', 'val')}, %): min {min(ref):.1f}, median {sorted(ref)[len(ref) // 2]:.1f}, "
                 f"max {max(ref):.1f}")
    return "\n".join(lines)
