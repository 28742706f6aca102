"""Evaluators against NAS-Bench-201's public accuracies: do they rank networks better than their size?

The ground truth (``shared/data/nb201_accuracy_nats.csv.gz``: NATS-Bench's test accuracy after 200 epochs on
CIFAR-10, CIFAR-100 and ImageNet16-120) is used to *measure* data-free evaluators, never to fit them: CIFAR
images are not on these machines, and a rule tuned on this file would be a benchmark artefact. Networks are
built as hwnas builds the space ``cell`` (live edges only; NAS-Bench-201's 6,466 unique networks are the
same functions either way), one per unique network, sampled with a seed. Beside each evaluator: the size
baselines (parameters and MACs) overall, and within latency bins: among networks whose latency on a real
device (HELP's measurements, ``shared/data/nb201_device_latency_help.csv.gz``) is within 5 % of each other,
which is more accurate? That is what a hardware-aware search asks of its accuracy axis.
"""
from __future__ import annotations

import csv
import gzip
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.core.errors import InputError
from hwnas.core.metrics import kendall_tau, kendall_tau_near, pairs_near, spearman_rho
from hwnas.spaces.base import get_space, layer_costs

DATASETS = {"cifar10": "cifar10_test_acc_200ep", "cifar100": "cifar100_test_acc_200ep",
            "imagenet16-120": "imagenet16_120_test_acc_200ep"}
# devices timed to a fraction of a millisecond (the three phones HELP recorded in whole milliseconds are left
# out: their ties say nothing about pairs within 5 %)
BIN_DEVICES = ("1080ti_1", "2080ti_1", "titanx_1", "titanxp_1", "silver_4114", "silver_4210r", "pixel3")
SIZE_BASELINES = ("params", "macs")


def shared_data_dir() -> Path:
    """``shared/data`` beside the checkout (where the project keeps public ground truth)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class Nb201Network:
    arch: str                 # NAS-Bench-201's string
    accuracy: dict[str, float]
    latency_ms: dict[str, float] = field(default_factory=dict)  # per HELP device


def read_ground_truth(data_dir: Path | None = None) -> dict[str, Nb201Network]:
    """One network per unique function (the first cell string listed for it), keyed by that string."""
    data_dir = Path(data_dir) if data_dir else shared_data_dir()
    acc_file, lat_file = data_dir / "nb201_accuracy_nats.csv.gz", data_dir / "nb201_device_latency_help.csv.gz"
    if not acc_file.is_file():
        raise InputError(f"{acc_file} not found: the NAS-Bench-201 ground truth lives in shared/data beside the "
                         f"checkout (or pass --data-dir)")
    latency: dict[str, dict[str, float]] = {}
    if lat_file.is_file():
        with gzip.open(lat_file, "rt") as f:
            for row in csv.DictReader(f):
                latency[row["arch"]] = {d: float(row[f"{d}_ms"]) for d in BIN_DEVICES}
    out: dict[str, Nb201Network] = {}
    seen: set[str] = set()
    with gzip.open(acc_file, "rt") as f:
        for row in csv.DictReader(f):
            if row["unique"] in seen:
                continue
            seen.add(row["unique"])
            out[row["arch"]] = Nb201Network(row["arch"], {k: float(row[c]) for k, c in DATASETS.items()},
                                            latency.get(row["arch"], {}))
    return out


@dataclass
class Nb201Row:
    evaluator: str
    spearman: dict[str, float]
    kendall: dict[str, float]
    kendall_near_latency: dict[str, float]  # per device, CIFAR-10, pairs within 5 % latency
    secs_per_arch: float

    @property
    def near_mean(self) -> float:
        v = list(self.kendall_near_latency.values())
        return sum(v) / len(v) if v else float("nan")


@dataclass
class Nb201Bench:
    n: int
    seed: int
    rows: list[Nb201Row]
    pairs_near_latency: dict[str, int]
    archs: list[str]
    scores: dict[str, list[float]]
    space: str = "cell"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r, row in zip(d["rows"], self.rows):
            r["kendall_near_latency_mean"] = row.near_mean
        return d

    def table(self) -> str:
        head = ("| evaluator | CIFAR-10 ρ | CIFAR-100 ρ | ImageNet16-120 ρ | CIFAR-10 τ | τ within 5 % latency "
                "(mean of 7 devices) | s/arch |")
        lines = [head, "|" + "---|" * 7]
        for r in self.rows:
            lines.append(f"| {r.evaluator} | {r.spearman['cifar10']:.3f} | {r.spearman['cifar100']:.3f} | "
                         f"{r.spearman['imagenet16-120']:.3f} | {r.kendall['cifar10']:.3f} | {r.near_mean:.3f} | "
                         f"{r.secs_per_arch:.3f} |")
        devices = "; ".join(f"{d} " + ", ".join(f"{r.evaluator} {r.kendall_near_latency[d]:.2f}" for r in self.rows)
                            for d in self.pairs_near_latency)
        return "\n".join(lines) + f"\n\nτ within 5 % latency per device ({devices})"


def size_scores(archs: Sequence[Any]) -> dict[str, list[float]]:
    """Parameters and MACs of each network as hwnas counts them (``arch.layers()``)."""
    costs = [layer_costs(a.layers()) for a in archs]
    return {"params": [float(p) for _, p in costs], "macs": [float(m) for m, _ in costs]}


DEFAULT_EVALUATORS = ("proxy:synflow", "proxy:meco", "proxy:vote proxies=meco,macs")


def evaluator_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"NAME KEY=VALUE ..."`` -> (NAME, options): an evaluator with options, as one word list."""
    name, *pairs = spec.split()
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise InputError(f"evaluator {spec!r}: options are KEY=VALUE, got {bad[0]!r}")
    return name, dict(p.split("=", 1) for p in pairs)


def run_nb201_bench(n: int = 1000, seed: int = 0, evaluators: Sequence[str] = DEFAULT_EVALUATORS,
                    data_dir: Path | None = None, progress: Callable[[str], None] | None = None) -> Nb201Bench:
    """Score ``n`` unique NAS-Bench-201 networks (drawn with ``seed``) with each data-free evaluator and the size
    baselines; rank correlations against the three data sets' accuracies, and within latency bins."""
    from hwnas.evaluate import create_evaluator

    truth = read_ground_truth(data_dir)
    if not 3 <= n <= len(truth):
        raise InputError(f"--n must be 3..{len(truth)} (the unique networks of NAS-Bench-201), got {n}")
    picked = random.Random(seed).sample(sorted(truth), n)
    space = get_space("cell")
    archs = [space.arch_from_text(s, source="nb201") for s in picked]
    scores: dict[str, list[float]] = size_scores(archs)
    secs = {k: 0.0 for k in scores}
    for name in evaluators:
        ev = create_evaluator(evaluator_spec(name)[0], **evaluator_spec(name)[1])
        if getattr(ev, "needs_data", False):
            raise InputError(f"{name} needs data, and CIFAR images are not available here: data-free evaluators only")
        t0 = time.perf_counter()
        scores[name] = [float(v) for v in ev.evaluate(archs)]
        secs[name] = (time.perf_counter() - t0) / n
        if progress:
            progress(f"{name}: {n} networks in {time.perf_counter() - t0:.0f} s")
    devices = [d for d in BIN_DEVICES if all(d in truth[s].latency_ms for s in picked)]
    rows = []
    for name, sc in scores.items():
        acc = {k: [truth[s].accuracy[k] for s in picked] for k in DATASETS}
        near = {d: kendall_tau_near(sc, acc["cifar10"], [truth[s].latency_ms[d] for s in picked]) for d in devices}
        rows.append(Nb201Row(name, {k: spearman_rho(sc, v) for k, v in acc.items()},
                             {k: kendall_tau(sc, v) for k, v in acc.items()}, near, secs[name]))
    pairs = {d: pairs_near([truth[s].latency_ms[d] for s in picked]) for d in devices}
    return Nb201Bench(n, seed, rows, pairs, picked, scores)
