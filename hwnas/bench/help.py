"""Transfer to real devices, by HELP's few-shot protocol on the NAS-Bench-201 latencies of 18 devices.

HELP (Lee et al., NeurIPS 2021) predicts a device it never saw from N measured networks: the pool is
networks 0-899, the query set 900-1899 (HELP's index), each trimmed to the middle 80 % of that device's
latencies (10th-90th percentile); N networks are drawn from the pool at random, the predictor is fitted on
them and judged by Spearman's rho on the query set. Here the same draws are given to:

- ``transfer``: hwnas's transfer fit from a donor LUT of the space ``nb201`` (what ``hwnas profile
  --transfer-from DONOR --measurements FILE`` writes), and ``transfer-suggested``: the same fit on the N
  networks hwnas itself would ask for (``--suggest N``) instead of a random draw;
- ``donor``: the donor LUT's predictions unchanged (a rank, so scale does not matter for rho);
- ``macs``: MACs with every non-none edge counted, as the devices ran them;
- ``ridge``: a plain ridge regression over the per-op edge counts (and an intercept) fitted on the N.

MAPE and the share within +-10 % are reported too; for ``donor`` and ``macs`` after one scale factor fitted
on the N (the median ratio). Nothing here is fitted to the query set.
"""
from __future__ import annotations

import csv
import gzip
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.bench.nb201 import shared_data_dir
from hwnas.core.errors import InputError
from hwnas.core.metrics import spearman_rho
from hwnas.spaces.base import layer_costs

POOL, QUERY = range(0, 900), range(900, 1900)
METHODS = ("transfer", "transfer-suggested", "donor", "macs", "ridge")
# HELP's Table 3: the Spearman it reports for a device of each class, N = 10
HELP_REPORTED = {"desktop GPU": 0.987, "desktop CPU": 0.989, "Pixel 2": 0.802, "Raspberry Pi 4": 0.890,
                 "ASIC": 0.940, "FPGA": 0.985}
WHOLE_MS_DEVICES = ("samsung_a50", "essential_ph_1", "samsung_s7")  # recorded in whole milliseconds


def device_class(device: str) -> str:
    if device.startswith(("1080ti", "2080ti", "titanx")):
        return "desktop GPU"
    if device.startswith("silver"):
        return "desktop CPU"
    return "phone"


@dataclass
class DeviceRow:
    device: str
    device_class: str
    n: int
    draws: int
    spearman: dict[str, float]           # method -> mean over draws
    spearman_sd: dict[str, float]
    mape_pct: dict[str, float]
    within_10_pct: dict[str, float]
    query: int
    ceiling: float | None = None         # rho of the latencies against themselves after rounding (whole-ms phones)


@dataclass
class HelpBench:
    donor: str
    ns: list[int]
    draws: int
    seed: int
    rows: list[DeviceRow] = field(default_factory=list)

    def mean(self, n: int, method: str) -> float:
        v = [r.spearman[method] for r in self.rows if r.n == n]
        return float(np.mean(v)) if v else float("nan")

    def table(self) -> str:
        lines = ["| device | class | N | " + " | ".join(METHODS) + " | MAPE transfer | ±10 % transfer |",
                 "|" + "---|" * (len(METHODS) + 5)]
        for r in self.rows:
            ceil = f" (ceiling {r.ceiling:.3f})" if r.ceiling is not None else ""
            lines.append(f"| {r.device}{ceil} | {r.device_class} | {r.n} | "
                         + " | ".join(f"{r.spearman[m]:.3f}" for m in METHODS)
                         + f" | {r.mape_pct['transfer']:.1f} | {r.within_10_pct['transfer']:.0f} |")
        for n in self.ns:
            lines.append(f"| **mean** | | {n} | " + " | ".join(f"**{self.mean(n, m):.3f}**" for m in METHODS)
                         + " | | |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "means": {n: {m: self.mean(n, m) for m in METHODS} for n in self.ns}}


def read_help(data_dir: Path | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """NAS-Bench-201 strings in HELP's order and each device's latencies (ms)."""
    f = Path(data_dir or shared_data_dir()) / "nb201_device_latency_help.csv.gz"
    if not f.is_file():
        raise InputError(f"{f} not found: the HELP latencies live in shared/data beside the checkout (or --data-dir)")
    with gzip.open(f, "rt") as fh:
        rows = list(csv.DictReader(fh))
    rows.sort(key=lambda r: int(r["index"]))
    devices = [k[:-3] for k in rows[0] if k.endswith("_ms")]
    return [r["arch"] for r in rows], {d: np.array([float(r[f"{d}_ms"]) for r in rows]) for d in devices}


def trimmed(idx: Sequence[int], lat: np.ndarray) -> np.ndarray:
    """The indices whose latency lies within the 10th-90th percentile of ``idx``'s (HELP's trimming)."""
    idx = np.asarray(list(idx))
    lo, hi = np.percentile(lat[idx], [10, 90])
    return idx[(lat[idx] >= lo) & (lat[idx] <= hi)]


def _scaled(pred_n: np.ndarray, y_n: np.ndarray, pred_q: np.ndarray) -> np.ndarray:
    return pred_q * float(np.median(y_n / pred_n))


def _errors(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    e = np.abs(pred - y) / y * 100
    return float(e.mean()), float((e <= 10).mean() * 100)


def _ridge(X: np.ndarray, y: np.ndarray, lam: float = 1e-3) -> np.ndarray:
    """Ridge on standardised features with an unpenalised intercept; returns weights for [X, 1]."""
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (X - mu) / sd
    A = np.column_stack([Z, np.ones(len(Z))])
    pen = np.eye(A.shape[1]) * lam * len(y)
    pen[-1, -1] = 0.0
    w = np.linalg.solve(A.T @ A + pen, A.T @ y)
    return np.concatenate([w[:-1] / sd, [w[-1] - np.sum(w[:-1] * mu / sd)]])


def run_help_bench(donor_path: str | Path, ns: Sequence[int] = (5, 10, 20), draws: int = 20, seed: int = 0,
                   devices: Sequence[str] | None = None, data_dir: Path | None = None,
                   progress: Callable[[str], None] | None = None) -> HelpBench:
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.measuring.transfer import check_donor
    from hwnas.measuring.transfer_fit import (Design, choose_networks, fit_transfer, space_extremes,
                                              transfer_model)
    from hwnas.measuring.sampling import sample_archs

    archs_text, lat = read_help(data_dir)
    donor = LUT.load(donor_path)
    space = donor.search_space()
    if getattr(space, "dead_edges", None) != "computed":
        raise InputError(f"donor {donor_path} is a LUT of space {space.name!r}; HELP's devices ran NAS-Bench-201 "
                         f"with every non-none edge computed: give a LUT of the space nb201")
    used = sorted(set(POOL) | set(QUERY))
    archs = {i: space.arch_from_text(archs_text[i], source=f"HELP index {i}") for i in used}
    keys = check_donor(donor, donor_path, space, space.resolutions, donor.profiler, donor.fingerprint)
    design = Design(donor, space, keys)
    order = list(used)
    C, io, nb = design.counts([archs[i] for i in order])
    at = {i: k for k, i in enumerate(order)}
    donor_pred = latency_predictor(donor).predict_many([archs[i] for i in order])
    macs = np.array([layer_costs(archs[i].layers())[0] for i in order], float)
    ops = [o for o in space.ops if o != "none"]
    opc = np.array([[sum(op == o for op in archs[i].ops) for o in ops] for i in order], float)
    # the networks hwnas itself would ask for, mapped to the nearest pool network by the same counts
    pool_archs = sample_archs(space, 600, seed, space.resolutions, extremes=False)
    bench = HelpBench(str(donor_path), list(ns), draws, seed)
    for device in devices or sorted(lat):
        y_all = lat[device]
        pool, query = trimmed(POOL, y_all), trimmed(QUERY, y_all)
        qk = np.array([at[i] for i in query])
        yq = y_all[query]
        ceiling = whole_ms_ceiling(lat["pixel3"], query, float(np.median(yq))) if device in WHOLE_MS_DEVICES \
            and "pixel3" in lat else None
        for n in ns:
            rho = {m: [] for m in METHODS}
            mape = {m: [] for m in METHODS}
            w10 = {m: [] for m in METHODS}
            rng = random.Random(f"{seed}:{device}:{n}")
            suggested = choose_networks(design, pool_archs, space_extremes(space, space.resolutions), n)
            sugg_idx = _nearest_pool(suggested, pool, archs, design, at, C)
            for _ in range(draws):
                pick = rng.sample(list(pool), n)
                for method, chosen in (("transfer", pick), ("transfer-suggested", sugg_idx)):
                    k = np.array([at[i] for i in chosen])
                    y = y_all[chosen]
                    fit = fit_transfer(design, C[k], io[k], nb[k], y, np.zeros(len(keys)), np.zeros(len(keys)))
                    model = transfer_model(design, C[k], io[k], nb[k], y, fit)
                    pred = model.predict(C[qk], io[qk], nb[qk])
                    _record(rho, mape, w10, method, pred, yq)
                k = np.array([at[i] for i in pick])
                y = y_all[pick]
                for method, base in (("donor", donor_pred), ("macs", macs)):
                    _record(rho, mape, w10, method, _scaled(base[k], y, base[qk]), yq)
                w = _ridge(opc[k], y)
                _record(rho, mape, w10, "ridge", np.column_stack([opc[qk], np.ones(len(qk))]) @ w, yq)
            bench.rows.append(DeviceRow(device, device_class(device), n, draws,
                                        {m: float(np.mean(v)) for m, v in rho.items()},
                                        {m: float(np.std(v)) for m, v in rho.items()},
                                        {m: float(np.mean(v)) for m, v in mape.items()},
                                        {m: float(np.mean(v)) for m, v in w10.items()}, len(query), ceiling))
            if progress:
                progress(f"{device} N={n}: transfer {np.mean(rho['transfer']):.3f}, ridge {np.mean(rho['ridge']):.3f}, "
                         f"macs {np.mean(rho['macs']):.3f}")
    return bench


def whole_ms_ceiling(fine: np.ndarray, query: np.ndarray, median_ms: float) -> float:
    """What whole-millisecond timings cost Spearman's rho at best: a finely timed phone's latencies (Pixel 3)
    scaled to this device's median, rounded to whole ms, ranked against themselves unrounded. A perfect
    predictor of the true latencies reaches about this against the rounded ones."""
    x = fine[query] * (median_ms / float(np.median(fine[query])))
    return spearman_rho(x, np.round(x))


def _record(rho: dict, mape: dict, w10: dict, method: str, pred: np.ndarray, y: np.ndarray) -> None:
    rho[method].append(spearman_rho(pred, y))
    m, w = _errors(np.maximum(pred, 1e-9), y)
    mape[method].append(m)
    w10[method].append(w)


def _nearest_pool(suggested: Sequence[Any], pool: np.ndarray, archs: dict, design: Any, at: dict,
                  C: np.ndarray) -> list[int]:
    """HELP's devices measured only its 15,625 cells: each network hwnas suggests, as the pool network with the
    closest block counts (each used once)."""
    Cs, _, _ = design.counts(list(suggested))
    free = list(pool)
    out = []
    for row in Cs:
        j = int(np.argmin([np.abs(C[at[i]] - row).sum() for i in free]))
        out.append(free.pop(j))
    return out
