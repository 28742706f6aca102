"""How well do the cheap evaluators rank architectures? Short training is the reference.

Used by ``tools/bench_evaluators.py``; kept in the library so the numbers in the
README come from code that is tested.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwnas.evaluate import create_evaluator
from hwnas.evaluate.base import split
from hwnas.evaluate.predictor import fit_on_evaluator
from hwnas.evaluate.proxies import PROXIES
from hwnas.evaluate.supernet import SupernetConfig, read_checkpoint, train_supernet
from hwnas.evaluate.vote import VoteEvaluator, rank_vote
from hwnas.metrics import kendall_tau, kendall_tau_top, kendall_tau_within, spearman_rho
from hwnas.search.dispatch import make_dispatcher
from hwnas.space import SearchSpace
from profilers._host import peak_rss_mib


@dataclass
class Row:
    evaluator: str
    kendall_tau: float
    spearman_rho: float
    secs_per_eval: float
    note: str = ""
    tau_within_resolution: float | None = None  # pairs of the same input resolution only
    tau_top10: float | None = None              # among the reference's 10 best


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_evaluator_bench(space: SearchSpace, workdir: Path, data: str = "digits", n_archs: int = 30, seed: int = 0,
                        supernet_epochs: int = 20, train_epochs: int = 12, patience: int = 3,
                        predictor_archs: int = 200, workers: int = 2, reference_seeds: int = 1,
                        log: Callable[[str], None] = print) -> EvaluatorBench:
    """With ``reference_seeds`` >= 2 the reference is the mean over training seeds, and the tau between two
    seeds' rankings is reported: the noise ceiling no cheap evaluator can be expected to beat."""
    workdir.mkdir(parents=True, exist_ok=True)
    archs = space.sample_distinct(n_archs, random.Random(seed))
    scores: dict[str, list[float]] = {}
    secs: dict[str, float] = {}
    notes: dict[str, str] = {}

    # 1. supernet (first, so the process's peak RSS is the training's)
    ckpt = workdir / "supernet.pt"
    cfg = SupernetConfig(data=data, epochs=supernet_epochs, seed=seed)
    t = time.perf_counter()
    done = ckpt.exists() and read_checkpoint(ckpt)["epochs_done"] == supernet_epochs
    report = None if done else train_supernet(space, ckpt, cfg, resume=True)
    train_s = time.perf_counter() - t
    sn_info = {"checkpoint": str(ckpt), "epochs": supernet_epochs, "train_seconds": None if done else round(train_s, 1),
               "peak_rss_mib": round(peak_rss_mib(), 1) if not done else None,
               "history": read_checkpoint(ckpt)["history"][-1]}
    log(f"supernet: {supernet_epochs} epochs" + ("" if done else f" in {train_s:.0f} s, peak RSS "
                                                                  f"{sn_info['peak_rss_mib']:.0f} MiB"))
    sn = create_evaluator("supernet", checkpoint=str(ckpt))
    t = time.perf_counter()
    scores["supernet"] = sn.evaluate(archs)
    secs["supernet"] = (time.perf_counter() - t) / n_archs

    # 2. accuracy predictor trained on supernet accuracy of other archs
    t = time.perf_counter()
    predictor, fit, _ = fit_on_evaluator(space, sn, predictor_archs, seed=seed + 1, exclude=archs)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores["predictor"] = [float(v) for v in predictor.predict(archs)]
    secs["predictor"] = (time.perf_counter() - t) / n_archs
    notes["predictor"] = (f"MLP on {fit.n_train} supernet-scored archs ({fit_s:.0f} s to label and fit); "
                          f"held-out tau vs supernet {fit.val_kendall_tau:.3f}")
    log(f"predictor: {notes['predictor']}")

    # 3. zero-cost proxies, their vote, and the free baseline every evaluator must beat
    for name in [*PROXIES, "vote"]:
        ev = create_evaluator(f"proxy:{name}", seed=seed, data=data)  # synflow ignores data (data-free)
        ev.evaluate(archs[:1])  # warm-up (the vote scores its reference sample here)
        t = time.perf_counter()
        scores[f"proxy:{name}"] = ev.evaluate(archs)
        secs[f"proxy:{name}"] = (time.perf_counter() - t) / n_archs
    members = VoteEvaluator().members
    scores["rank vote over these archs"] = [float(v) for v in rank_vote({p: scores[f"proxy:{p}"] for p in members})]
    secs["rank vote over these archs"] = sum(secs[f"proxy:{p}"] for p in members)
    notes["rank vote over these archs"] = f"mean rank of {', '.join(members)} (the literature's vote)"
    notes["proxy:vote"] = f"mean percentile of {', '.join(members)} vs 64 reference archs (usable in a search)"
    scores["resolution alone"] = [float(a.resolution) for a in archs]
    secs["resolution alone"] = 0.0
    notes["resolution alone"] = "free baseline: bigger input, higher score"

    # 4. reference: short training with early stopping, spread over worker processes, once per seed
    log(f"short training of {n_archs} archs x {reference_seeds} seed(s) (up to {train_epochs} epochs, "
        f"patience {patience}, {workers} worker process(es)) ...")
    dispatcher = make_dispatcher(workers)
    runs: list[list[float]] = []
    t = time.perf_counter()
    for k in range(reference_seeds):
        ref = create_evaluator("train", data=data, max_epochs=train_epochs, patience=patience, seed=seed + k)
        runs.append([s for chunk in dispatcher.map(ref, split(archs, workers)) for s in chunk])
    secs["train"] = (time.perf_counter() - t) * max(1, workers) / (n_archs * reference_seeds)  # CPU-s per arch
    reference = [sum(v) / len(v) for v in zip(*runs)]

    res = [a.resolution for a in archs]
    rows = [Row(name, kendall_tau(s, reference), spearman_rho(s, reference), secs[name], notes.get(name, ""),
                kendall_tau_within(s, reference, res), kendall_tau_top(s, reference, 10))
            for name, s in scores.items()]
    label = "train (reference)" if reference_seeds == 1 else f"train, mean of {reference_seeds} seeds (reference)"
    rows.append(Row(label, 1.0, 1.0, secs["train"], f"up to {train_epochs} epochs, patience {patience}"))
    if reference_seeds >= 2:
        rows.append(Row(f"train seed {seed} vs {seed + 1}", kendall_tau(runs[0], runs[1]),
                        spearman_rho(runs[0], runs[1]), secs["train"],
                        "noise ceiling: how well one training run ranks like another",
                        kendall_tau_within(runs[0], runs[1], res), kendall_tau_top(runs[0], runs[1], 10)))
    return EvaluatorBench(space.name, data, n_archs, seed, rows, reference, scores, sn_info,
                          [a.to_dict() for a in archs], runs)


def format_table(bench: EvaluatorBench) -> str:
    w = max(len("evaluator"), *(len(r.evaluator) for r in bench.rows))
    lines = [f"{'evaluator':<{w}} {'Kendall tau':>11} {'same-res tau':>12} {'top-10 tau':>10} {'Spearman':>9} "
             f"{'s/eval':>9}", "-" * (w + 56)]

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    for r in bench.rows:
        lines.append(f"{r.evaluator:<{w}} {r.kendall_tau:>11.3f} {fmt(r.tau_within_resolution):>12} "
                     f"{fmt(r.tau_top10):>10} {r.spearman_rho:>9.3f} {r.secs_per_eval:>9.3f}")
    ref = bench.reference
    lines.append(f"reference accuracy (val, %): min {min(ref):.1f}, median {sorted(ref)[len(ref) // 2]:.1f}, "
                 f"max {max(ref):.1f}")
    return "\n".join(lines)
