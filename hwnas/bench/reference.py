"""The benchmarks' reference accuracy: every arch trained from scratch, once per seed, and how well
two seeds agree with each other (the noise ceiling no cheap evaluator can be expected to beat).

Training is the expensive part of every accuracy benchmark (minutes per arch and seed on 2 CPU
cores), so each (seed, arch) result is saved as it comes, in a file named by the recipe's digest:
a killed benchmark resumes, and a second benchmark with the same recipe (another supernet setting,
say) trains nothing again.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.core.progress import progress as progress_bar
from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.metrics import kendall_tau, kendall_tau_top, kendall_tau_within, spearman_rho
from hwnas.spaces.base import SpaceArch


@dataclass(frozen=True)
class Recipe:
    """How the reference trains one arch. The defaults: all epochs (cosine to 0), final weights scored
    on the test split, which is larger than val and never used by a search."""

    data: str = "fashion-mnist"
    data_limit: int | None = 1000  # images per class kept before the train/val split (all but official test)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.1
    patience: int = 0  # 0: no early stopping
    part: str = "test"
    split_seed: int = 0
    device: str = "auto"  # where to train: a CUDA GPU when torch sees one

    def __post_init__(self) -> None:
        if self.part not in ("val", "test"):
            raise InputError(f"reference part must be val or test, got {self.part!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"reference {name} must be >= 1, got {getattr(self, name)!r}")

    def evaluator(self, seed: int) -> Any:
        from hwnas.evaluate.train import EarlyStoppingEvaluator

        return EarlyStoppingEvaluator(data=self.data, split_seed=self.split_seed, max_epochs=self.epochs,
                                      patience=self.patience, batch_size=self.batch_size, lr=self.lr, seed=seed,
                                      data_limit=self.data_limit, part=self.part, device=self.device)

    @property
    def digest(self) -> str:
        import torch

        from hwnas.evaluate.device import resolve_device

        # the kind of device, not the spec: CPU and GPU trainings never mix in one cache
        settings = {**asdict(self), "device": resolve_device(self.device).type}
        blob = json.dumps({**settings, "torch": torch.__version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def describe(self) -> str:
        limit = "all images" if self.data_limit is None else f"{self.data_limit} images/class"
        stop = "no early stopping" if self.patience <= 0 else f"early stopping (patience {self.patience})"
        return (f"{self.data} ({limit}), {self.epochs} epochs, batch {self.batch_size}, lr {self.lr}, {stop}, "
                f"scored on {self.part}")


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # pool workers: one per core (never the calling process)


def _train_one(recipe: Recipe, seed: int, arch: SpaceArch) -> tuple[float, float]:
    """Accuracy and cost: CPU seconds on the CPU, wall seconds on a GPU."""
    from hwnas.evaluate.device import resolve_device

    clock = time.process_time if resolve_device(recipe.device).type == "cpu" else time.perf_counter
    t = clock()
    acc = recipe.evaluator(seed).evaluate([arch])[0]
    return acc, clock() - t


def save(path: Path, store: dict[str, Any]) -> None:
    """Write ``store`` merged with what is in the file now, under a lock: two benchmarks sharing a workdir
    (bench_reference and bench_evaluators, say) both keep their trainings."""
    import fcntl

    from hwnas.core.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            on_disk = jsonio.loads_file(path, InputError, "reference cache")
            for part in ("scores", "cpu_s"):
                store[part] = {**on_disk.get(part, {}), **store[part]}
        atomic_write_text(path, jsonio.dumps(store, indent=1))


def _key(seed: int, arch: SpaceArch) -> str:
    return f"{seed}:{arch.id}"


def train_reference(archs: Sequence[SpaceArch], recipe: Recipe, seeds: Sequence[int], workers: int = 2,
                    cache: Path | None = None, progress: bool = True) -> tuple[dict[int, list[float]], float]:
    """Accuracy of every arch for every seed (``{seed: [acc in arch order]}``) and the median cost of one
    training (CPU seconds; wall seconds on a GPU). ``cache``: a folder; results already there (same recipe)
    are reused. Pool workers run one torch thread each; with ``workers`` <= 1 the trainings run in this
    process, its thread count untouched."""
    path = None if cache is None else Path(cache) / f"reference-{recipe.digest}.json"
    store: dict[str, Any] = {"recipe": asdict(recipe), "scores": {}, "cpu_s": {}}
    if path is not None and path.exists():
        store = jsonio.loads_file(path, InputError, "reference cache")
    # arch by arch, every seed of one before the next: a run cut short leaves complete pairs
    todo = [(s, a) for a, s in itertools.product(archs, seeds) if _key(s, a) not in store["scores"]]
    bar = progress_bar(total=len(seeds) * len(archs), initial=len(seeds) * len(archs) - len(todo), unit="training",
                       desc=f"reference: {len(archs)} archs x {len(seeds)} seed(s)", disable=not progress,
                       dynamic_ncols=True)

    def keep(seed: int, arch: SpaceArch, acc: float, cpu_s: float) -> None:
        store["scores"][_key(seed, arch)] = round(float(acc), 4)
        store["cpu_s"][_key(seed, arch)] = round(float(cpu_s), 2)
        if path is not None:
            save(path, store)
        bar.update(1)

    try:
        if workers <= 1:
            for s, a in todo:
                keep(s, a, *_train_one(recipe, s, a))
        elif todo:
            import multiprocessing as mp

            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                     initializer=_one_thread) as pool:
                futures = {pool.submit(_train_one, recipe, s, a): (s, a) for s, a in todo}
                try:
                    for f in as_completed(futures):
                        keep(*futures[f], *f.result())
                except BaseException:
                    # what finished is saved; what is queued is dropped, not trained for nothing (Ctrl-C too)
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    runs = {s: [store["scores"][_key(s, a)] for a in archs] for s in seeds}
    cpu = [store["cpu_s"][_key(s, a)] for s in seeds for a in archs if _key(s, a) in store["cpu_s"]]
    return runs, float(np.median(cpu)) if cpu else float("nan")


def saved_reference(archs: Sequence[SpaceArch], recipe: Recipe, seeds: Sequence[int],
                    cache: Path) -> tuple[list[SpaceArch], dict[int, list[float]], float]:
    """What a (maybe unfinished) reference run saved: the archs trained with every seed, their accuracies
    and the median cost of one training. Nothing is trained."""
    path = Path(cache) / f"reference-{recipe.digest}.json"
    store = jsonio.loads_file(path, InputError, "reference cache") if path.exists() else {"scores": {}, "cpu_s": {}}
    done = [a for a in archs if all(_key(s, a) in store["scores"] for s in seeds)]
    runs = {s: [store["scores"][_key(s, a)] for a in done] for s in seeds}
    cpu = [store["cpu_s"][_key(s, a)] for s in seeds for a in done if _key(s, a) in store.get("cpu_s", {})]
    return done, runs, float(np.median(cpu)) if cpu else float("nan")


@dataclass
class Agreement:
    """How two training seeds rank the same archs: the ceiling for any cheap evaluator."""

    kendall_tau: float
    spearman_rho: float
    tau_within_resolution: float | None
    tau_top10: float | None
    seed_noise_sd: float      # points: sd of one run's accuracy around the arch's mean (from seed differences)
    arch_spread_sd: float     # points: sd of the per-arch mean accuracy across archs
    resolution_tau: float     # the free baseline: input resolution alone vs the mean accuracy


def agreement(runs: dict[int, list[float]], archs: Sequence[SpaceArch]) -> Agreement:
    """Pairwise over seeds (the mean of every pair's statistic)."""
    seeds = sorted(runs)
    if len(seeds) < 2:
        raise InputError("the noise ceiling needs two or more seeds")
    res = [a.resolution for a in archs]
    pairs = list(itertools.combinations(seeds, 2))

    def mean(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(vals)) if vals else None

    acc = np.array([runs[s] for s in seeds], float)
    diffs = np.concatenate([acc[i] - acc[j] for i, j in itertools.combinations(range(len(seeds)), 2)])
    mean_acc = acc.mean(0)
    return Agreement(
        kendall_tau=float(np.mean([kendall_tau(runs[a], runs[b]) for a, b in pairs])),
        spearman_rho=float(np.mean([spearman_rho(runs[a], runs[b]) for a, b in pairs])),
        tau_within_resolution=mean([kendall_tau_within(runs[a], runs[b], res) for a, b in pairs]),
        tau_top10=mean([kendall_tau_top(runs[a], runs[b], 10) for a, b in pairs]),
        seed_noise_sd=float(np.std(diffs, ddof=1) / np.sqrt(2)) if len(diffs) > 1 else float("nan"),
        arch_spread_sd=float(np.std(mean_acc, ddof=1)),
        resolution_tau=kendall_tau(res, mean_acc.tolist()),
    )


def workers_default() -> int:
    return max(1, len(os.sched_getaffinity(0)))
