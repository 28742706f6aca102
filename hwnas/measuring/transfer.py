"""Few-shot latency transfer: a LUT for a new device from a LUT of another one and N whole networks measured here.

Building a LUT costs every block of the space timed in fresh processes plus tens of whole networks (demo: ~4.5 min,
mbv3 on torch-cpu: 22 min on 2 cores, far longer through an agent on a slow board). A donor LUT already knows
which blocks cost more than which; what changes between devices is mostly *how much*, per kind of block
(depthwise k7 vs k3, squeeze-excite, hswish, the fixed stem/head) and per unit of compute, plus the glue between
blocks. So the transfer model, linear in its parameters and fitted on the N networks measured here:

    new block ms  = ((rho + delta_type) * donor ms + gamma * MACs) / isolation
    network ms    = a * isolation * sum(new block ms) + b' * io + c' * blocks + d'

* ``rho``: one device-speed ratio, not penalised (N = 1 fixes it);
* ``delta_type``: a per-block-type deviation of that ratio, ridge-penalised toward 0: with few networks the
  model *is* the donor scaled by rho (its calibration included), and types move away only as far as the
  networks demand. Why not fit per-block scales freely: 15 types and 5 networks would interpolate noise;
* ``gamma``: latency per MAC on top (devices differ most in compute-bound blocks: AVX-512 vs AVX2), penalised;
* ``b', c', d'``: the donor's calibration terms (boundary elements, block count, constant) times rho, plus
  penalised deviations: the per-call and between-block glue of another runtime (torch vs ORT);
* ``isolation``: how an isolated block relates to the same block in a network, the donor's ``a`` as prior;
  only blocks measured individually (``--time-budget``) can move it.

The two ridge strengths (types, additive terms) are chosen by leave-one-out error over the networks, among fits
that price every block and network > 0; a grid point of 1e4 nests "the donor scaled by one factor". Rows are
relative errors (a 5 % miss on a 1 ms network counts as much as on a 50 ms one), as in hwnas.measuring.calibrate.

The networks are chosen, not sampled: the space's smallest and largest, then donor-predicted latency quantiles
0.5, 0.25, 0.75, 0.125, ... of a seeded pool, each pick within its quantile window the one that most increases
the information of the fit (sequential D-optimal: block types not yet seen), so every prefix spans the latency
range and the block types, and a transfer with more networks re-uses the earlier ones.

numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from hwnas.spaces.blocks import LayerDesc
from hwnas.core.errors import InputError
from hwnas.latency.predict import FEATURES, io_melems

POOL = 600               # candidate networks the N are chosen from
MAX_NETWORKS = 200        # beyond this a transfer times more than a full build of demo/mbv3 does
LAMBDA_TYPES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 1e4)
LAMBDA_ADDITIVE = (0.01, 0.1, 1.0, 10.0, 1e4)
MODEL = "per-type-ridge"
RECALIBRATED = "donor-blocks-recalibrated"  # the donor's blocks, scaled, under hwnas.measuring.calibrate's model


class TransferError(InputError):
    """A donor LUT that cannot be transferred from (another space, a GPU for a CPU, missing blocks), or a
    transfer output that would overwrite a LUT built otherwise; the message says what to do."""


def block_type(d: LayerDesc) -> str:
    """What a per-type scale is shared by: the op with what changes its mix of work on another device
    (kernel: depthwise cost; activation; squeeze-excite), not its size (MACs and the ridge handle that)."""
    parts = [d.op]
    if d.op in ("conv", "mbconv", "rcb", "avgpool", "resblock"):
        parts.append(f"k{d.kernel}")
    if d.op in ("mbconv",):
        parts.append(d.act)
    if d.se:
        parts.append("se")
    return ":".join(parts)


def device_kind(fingerprint: dict[str, Any]) -> str:
    """``gpu`` or ``cpu``: a GPU's block costs (launch-bound) do not carry over to a CPU, nor back."""
    return "gpu" if fingerprint.get("gpu") or str(fingerprint.get("device", "")).startswith("cuda") else "cpu"


def donor_closeness(donor_fp: dict[str, Any], here: dict[str, Any]) -> tuple[int, float, int, int]:
    """How alike a donor's device is to this one (larger: closer), to choose among several donors.

    In order: the same kind (CPU or GPU) and machine (x86_64, aarch64); the share of CPU feature flags in common
    (ONNX Runtime and torch pick kernels by ISA, so AVX-512 or VNNI change *which* blocks are expensive, not only
    how fast everything is: what a per-type fit must otherwise learn from its few networks); the same CPU model;
    the same runtime versions.
    """
    same_kind = int(device_kind(donor_fp) == device_kind(here) and donor_fp.get("machine") == here.get("machine"))
    a, b = set(str(donor_fp.get("cpu_flags") or "").split()), set(str(here.get("cpu_flags") or "").split())
    flags = round(len(a & b) / len(a | b), 6) if a | b else 0.0
    same_model = int(donor_fp.get("cpu_model") == here.get("cpu_model"))
    same_runtime = sum(donor_fp.get(k) == here.get(k) for k in ("onnxruntime", "torch"))
    return same_kind, flags, same_model, same_runtime


def donor_coef(donor) -> np.ndarray:
    """The donor's calibration over FEATURES; the plain block sum when it has none."""
    c = (donor.calibration or {}).get("coef")
    return np.asarray(c, float) if c else np.array([1.0, 0.0, 0.0, 0.0])


class Design:
    """The donor's blocks and a set of networks as matrices: which block (key) each network holds how often,
    each block's donor ms, MACs, type; each network's boundary elements and block count. Everything the fit
    and the choice of networks compute is a product of these, for any set of individually measured blocks."""

    def __init__(self, donor, space, keys: Sequence[str]):
        self.donor, self.space = donor, space
        self.keys = list(keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        descs = [LayerDesc.from_key(k) for k in self.keys]
        self.d = np.array([donor.entries[k]["median_ms"] for k in self.keys], float)
        self.macs = np.array([float(x.macs) for x in descs])
        self.types = sorted({block_type(x) for x in descs})
        t = {name: i for i, name in enumerate(self.types)}
        self.T = np.zeros((len(self.keys), len(self.types)))
        self.T[np.arange(len(self.keys)), [t[block_type(x)] for x in descs]] = 1.0
        self.coef = donor_coef(donor)
        with_macs = self.macs > 0
        self.mac_scale = float(np.median(self.d[with_macs] / self.macs[with_macs])) if with_macs.any() else 1.0
        self.add_scale = np.ones(3)  # set from a pool by set_scales: b', c', d' in units of a typical network

    def counts(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """C [networks, keys] (how often each block occurs), io Melems, blocks per network."""
        C = np.zeros((len(archs), len(self.keys)))
        io, n = np.zeros(len(archs)), np.zeros(len(archs))
        for i, a in enumerate(archs):
            for x in a.layers():
                C[i, self.index[x.key]] += 1
                io[i] += io_melems(x)
                n[i] += 1
        return C, io, n

    def prior(self, C: np.ndarray, io: np.ndarray, n: np.ndarray) -> np.ndarray:
        """The donor's own calibrated prediction of each network (rho = 1, no deviation)."""
        return self.coef[0] * (C @ self.d) + self.coef[1] * io + self.coef[2] * n + self.coef[3]

    def set_scales(self, C: np.ndarray, io: np.ndarray, n: np.ndarray) -> None:
        p0 = self.prior(C, io, n)
        self.add_scale = np.array([np.median(p0 / np.maximum(io, 1e-12)), np.median(p0 / n), np.median(p0)])

    # parameters: [rho, delta_M (isolation - 1), delta_type x G, delta_gamma, delta_b, delta_c, delta_d]
    @property
    def n_params(self) -> int:
        return 2 + len(self.types) + 4

    def network_rows(self, C, io, n, measured: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the linear model for whole networks, in absolute ms: X theta ~ y - a * (measured blocks)."""
        a = self.coef[0]
        un = 1.0 - measured
        p0u = a * (C @ (self.d * un)) + self.coef[1] * io + self.coef[2] * n + self.coef[3]
        Msum = C @ (m * measured)
        X = np.column_stack([p0u, a * Msum, a * (C @ ((self.d * un)[:, None] * self.T)),
                             a * self.mac_scale * (C @ (self.macs * un)),
                             self.add_scale[0] * io, self.add_scale[1] * n, np.full(len(n), self.add_scale[2])])
        return X, a * Msum

    def block_rows(self, idx: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Rows for individually measured blocks: m (1 + delta_M) = (rho + delta_type) d + gamma MACs, as
        X theta = m with the delta_M column -m."""
        G = len(self.types)
        X = np.zeros((len(idx), self.n_params))
        X[:, 0] = self.d[idx]
        X[:, 1] = -m[idx]
        X[:, 2:2 + G] = self.d[idx][:, None] * self.T[idx]
        X[:, 2 + G] = self.mac_scale * self.macs[idx]
        return X

    def penalties(self, lam_types: float, lam_add: float) -> np.ndarray:
        G = len(self.types)
        return np.array([1e-9, lam_types] + [lam_types] * G + [lam_add] * 4)

    def block_ms(self, theta: np.ndarray) -> np.ndarray:
        """Each block's transferred (isolated) ms under ``theta``."""
        G = len(self.types)
        scale = theta[0] + self.T @ theta[2:2 + G]
        return (scale * self.d + theta[2 + G] * self.mac_scale * self.macs) / (1.0 + theta[1])

    def calibration_coef(self, theta: np.ndarray) -> np.ndarray:
        G = len(self.types)
        rho, b = theta[0], self.coef
        return np.array([b[0] * (1.0 + theta[1]), rho * b[1] + self.add_scale[0] * theta[3 + G],
                         rho * b[2] + self.add_scale[1] * theta[4 + G], rho * b[3] + self.add_scale[2] * theta[5 + G]])


def _solve(X: np.ndarray, t: np.ndarray, w: np.ndarray, pen: np.ndarray, prior_theta: np.ndarray) -> np.ndarray:
    """Weighted ridge toward ``prior_theta``: min sum w^2 (X theta - t)^2 + sum pen (theta - prior)^2."""
    Xw, tw = X * w[:, None], t * w
    A = Xw.T @ Xw + np.diag(pen)
    return np.linalg.solve(A, Xw.T @ tw + pen * prior_theta)


@dataclass
class TransferFit:
    """A fitted transfer: its parameters, chosen ridge strengths, and how well it predicts networks it did
    not see (leave-one-out over the measured networks: the error a LUT user should expect)."""

    theta: np.ndarray
    lam: tuple[float, float]
    loo_mape_pct: float
    loo_within_10_pct: float
    fit_mape_pct: float
    loo_errors_pct: list[float]
    cov: np.ndarray = field(repr=False)
    types: list[str] = field(default_factory=list)

    @property
    def rho(self) -> float:
        return float(self.theta[0])

    def summary(self, design: Design) -> dict[str, Any]:
        G = len(design.types)
        return {"model": MODEL, "lambda": [self.lam[0], self.lam[1]], "rho": round(self.rho, 6),
                "isolation": round(1.0 + float(self.theta[1]), 6),
                "type_scale": {t: round(float(self.theta[0] + self.theta[2 + i]), 6) for i, t in enumerate(design.types)},
                "per_gmac_ms": round(float(self.theta[2 + G] * design.mac_scale * 1e9), 6),
                "loo_mape_pct": round(self.loo_mape_pct, 3), "loo_within_10_pct": round(self.loo_within_10_pct, 1),
                "fit_mape_pct": round(self.fit_mape_pct, 3)}


def fit_transfer(design: Design, C: np.ndarray, io: np.ndarray, n: np.ndarray, y: np.ndarray,
                 measured: np.ndarray | None = None, m: np.ndarray | None = None) -> TransferFit:
    """Fit on networks (C, io, n, measured ms y) and individually measured blocks (``measured`` mask over the
    design's keys, their ms in ``m``): ridge strengths by leave-one-out MAPE over the networks, among plausible
    fits (every block and every network of the rows > 0 ms)."""
    K = len(design.keys)
    measured = np.zeros(K) if measured is None else measured.astype(float)
    m = np.zeros(K) if m is None else np.asarray(m, float)
    Xn, offset = design.network_rows(C, io, n, measured, m)
    idx = np.flatnonzero(measured)
    Xb = design.block_rows(idx, m)
    X = np.vstack([Xn, Xb])
    t = np.concatenate([y - offset, m[idx]])
    w = 1.0 / np.concatenate([y, m[idx]])
    prior = np.zeros(design.n_params)
    prior[0] = float(np.sum(y * design.prior(C, io, n)) / np.sum(design.prior(C, io, n) ** 2))  # unused: pen 0
    N = len(y)
    best = None
    for lt in LAMBDA_TYPES:
        for la in LAMBDA_ADDITIVE:
            pen = design.penalties(lt, la)
            theta = _solve(X, t, w, pen, prior)
            if not _plausible(design, theta, Xn, offset):
                continue
            errs = []
            for i in range(N):
                keep = np.ones(len(t), bool)
                keep[i] = False
                th = _solve(X[keep], t[keep], w[keep], pen, prior)
                errs.append(((Xn[i] @ th + offset[i]) - y[i]) / y[i] * 100)
            errs_a = np.abs(errs)
            score = float(np.mean(errs_a)) if N > 1 else 0.0
            if best is None or score < best[0] - 1e-9:
                best = (score, lt, la, theta, errs)
    if best is None:  # nothing plausible: the donor scaled by one factor (rho alone) always is
        lt = la = 1e12
        pen = design.penalties(lt, la)
        theta = _solve(X, t, w, pen, prior)
        errs = [((Xn[i] @ theta + offset[i]) - y[i]) / y[i] * 100 for i in range(N)]
        best = (float(np.mean(np.abs(errs))), lt, la, theta, errs)
    score, lt, la, theta, errs = best
    pen = design.penalties(lt, la)
    r = (X @ theta - t) * w
    dof = max(1, len(t) - 1)
    s2 = max(float(r @ r) / dof, 1e-6)
    Xw = X * w[:, None]
    cov = s2 * np.linalg.inv(Xw.T @ Xw + np.diag(pen))
    fit_err = np.abs((Xn @ theta + offset - y) / y) * 100
    errs_a = np.abs(errs)
    return TransferFit(theta, (lt, la), score if N > 1 else float("nan"),
                       float(np.mean(errs_a <= 10.0) * 100) if N > 1 else float("nan"),
                       float(np.mean(fit_err)), [round(float(e), 3) for e in errs], cov, list(design.types))


@dataclass(frozen=True)
class Recalibration:
    """The donor's blocks (plus, for ``donor+macs``, a cost per MAC) under one of hwnas.measuring.calibrate's
    models refitted on the N networks; ``block_ms`` is each block's cost on this device under it."""

    model: str
    coef: np.ndarray           # over FEATURES, the block sum's scale folded into block_ms (coef[0] == 1)
    block_ms: np.ndarray
    scores: dict[str, float]
    loo_mape_pct: float
    loo_within_10_pct: float
    loo_errors_pct: list[float]
    rho: float                 # the donor's block costs' scale


def _loo_errors(F: np.ndarray, y: np.ndarray, fit) -> list[float]:
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        errs.append(float((F[i] @ fit(F[keep], y[keep]) - y[i]) / y[i] * 100))
    return errs


def _relative_lstsq(F: np.ndarray, y: np.ndarray) -> np.ndarray:
    sol, *_ = np.linalg.lstsq(F / y[:, None], np.ones(len(y)), rcond=None)
    return sol


def recalibrated_donor(design: Design, C: np.ndarray, io: np.ndarray, n: np.ndarray,
                       y: np.ndarray) -> Recalibration | None:
    """The best of the refits that keep the donor's blocks, by leave-one-out MAPE over the networks: its raw
    block sums under calibrate's models (scale, affine, boundary), and ``donor+macs`` (each block the donor's
    cost times one factor plus one cost per MAC, with the boundary terms: for a device whose cost structure
    differs, as an emulated board whose compute costs more than its memory traffic). None below 2 networks."""
    from hwnas.measuring.calibrate import choose_model, fit

    if len(y) < 2:
        return None
    F = feature_rows(design.d, C, io, n)
    model, coef, scores = choose_model(F, y)
    errs = _loo_errors(F, y, lambda f, t: fit(f, t, model))
    best = (float(np.mean(np.abs(errs))), model, coef, design.d * coef[0], float(coef[0]), errs)
    scores = {f"transfer:{k}": round(float(v), 3) for k, v in scores.items()}
    macs = design.mac_scale * design.macs  # in the donor's ms: a column of the same size as the block sum
    Fm = np.column_stack([C @ design.d, C @ macs, io, n, np.ones(len(n))])
    if len(y) >= Fm.shape[1] + 3:
        sol = _relative_lstsq(Fm, y)
        block = sol[0] * design.d + sol[1] * macs
        if sol[0] >= 0 and sol[1] >= 0 and np.all(block > 0) and np.all(Fm @ sol > 0):
            errs_m = _loo_errors(Fm, y, _relative_lstsq)
            mape_m = float(np.mean(np.abs(errs_m)))
            scores["transfer:donor+macs"] = round(mape_m, 3)
            if mape_m < best[0]:
                best = (mape_m, "donor+macs", np.array([1.0, *sol[2:]]), block, float(sol[0]), errs_m)
    mape, model, coef, block, rho, errs = best
    if np.any(block <= 0):
        return None
    coef = np.array([1.0, *coef[1:]])  # the block sum's scale lives in block_ms
    a = np.abs(errs)
    return Recalibration(model, coef, block, scores, mape, float(np.mean(a <= 10.0) * 100),
                         [round(e, 3) for e in errs], rho)


def _plausible(design: Design, theta: np.ndarray, Xn: np.ndarray, offset: np.ndarray) -> bool:
    return bool(1.0 + theta[1] > 0.05 and np.all(design.block_ms(theta) > 0) and np.all(Xn @ theta + offset > 0)
                and design.calibration_coef(theta)[0] > 0)


def block_uncertainty(design: Design, fit: TransferFit) -> np.ndarray:
    """Standard deviation (ms, isolated) of each block's transferred cost under the fit's covariance."""
    G = len(design.types)
    J = np.zeros((len(design.keys), design.n_params))
    J[:, 0] = design.d
    J[:, 2:2 + G] = design.d[:, None] * design.T
    J[:, 2 + G] = design.mac_scale * design.macs
    var = np.einsum("ij,jk,ik->i", J, fit.cov, J)
    return np.sqrt(np.maximum(var, 0.0)) / (1.0 + fit.theta[1])


def _vdc_quantiles(n: int) -> list[tuple[float, float]]:
    """(quantile, half window) 0.5, 0.25, 0.75, 0.125, ...: every prefix spreads over the range."""
    out, level = [], 1
    while len(out) < n:
        step = 0.5 ** level
        out += [(q * step, step / 2) for q in range(1, 2 ** level, 2)]
        level += 1
    return out[:n]


def choose_networks(design: Design, pool: Sequence[Any], extremes: Sequence[Any], n: int) -> list[Any]:
    """N networks: ``extremes`` (smallest, largest) first, then donor-latency quantiles of ``pool``, each the
    pick within its window that most adds to the fit's information (log det, sequential D-optimal)."""
    cand = list(extremes) + [a for a in pool if a.id not in {e.id for e in extremes}]
    C, io, nb = design.counts(cand)
    design.set_scales(C, io, nb)
    X, _ = design.network_rows(C, io, nb, np.zeros(len(design.keys)), np.zeros(len(design.keys)))
    p0 = design.prior(C, io, nb)
    rows = X / p0[:, None]  # relative rows, as the fit weighs them
    info = np.diag(design.penalties(0.1, 0.1) + 1e-3)
    chosen: list[int] = []

    def take(i: int) -> None:
        nonlocal info
        chosen.append(i)
        info = info + np.outer(rows[i], rows[i])

    for i in range(min(len(extremes), n)):
        take(i)
    rest = np.arange(len(extremes), len(cand))
    order = rest[np.argsort(p0[rest], kind="stable")]
    rank = np.empty(len(cand))
    rank[order] = np.arange(len(order)) / max(1, len(order) - 1)
    for q, half in _vdc_quantiles(max(0, n - len(chosen))):
        free = [i for i in order if i not in chosen]
        if not free:
            break
        window = [i for i in free if abs(rank[i] - q) <= half] or free
        inv = np.linalg.inv(info)
        gains = [float(rows[i] @ inv @ rows[i]) for i in window]
        take(window[int(np.argmax(gains))])
    return [cand[i] for i in chosen]


def space_extremes(space, resolutions: Sequence[int]) -> list[Any]:
    res = list(resolutions)
    out = []
    for a in (space.smallest(), space.largest()):
        a = replace(a, resolution=min(res) if a.resolution == min(space.resolutions) else max(res))
        if a.id not in {b.id for b in out}:
            out.append(a)
    return out


def feature_rows(entries_ms: np.ndarray, C: np.ndarray, io: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Raw predictor features (FEATURES) of networks under a set of block costs."""
    return np.column_stack([C @ entries_ms, io, n, np.ones(len(n))])


assert FEATURES == ("lut_sum_ms", "io_melems", "blocks", "one")


# -- the transfer run: refuse bad donors, measure (resumably), refine, fit, write the LUT -------------------
PROGRESS_SUFFIX = ".transfer-progress.json"
REFINE_BATCH = 8   # blocks measured between refits while refining


def check_donor(donor, donor_path, space, resolutions: Sequence[int], profiler_name: str, here: dict) -> list[str]:
    """The donor's block keys for ``space`` at ``resolutions``, or TransferError saying what to do instead."""
    from hwnas.latency.predict import covered_resolutions, fill_command

    if donor.space != space.to_dict():
        d = donor.space
        raise TransferError(
            f"donor {donor_path} is a LUT of space {d.get('name')!r} (kind {d.get('kind', 'mbv3')}), this transfer is "
            f"for space {space.name!r}: give a donor LUT of that space, or leave out --space/--space-file (the "
            f"transfer then uses the donor's space)")
    dk, hk = device_kind(donor.fingerprint), device_kind(here)
    if dk != hk:
        raise TransferError(
            f"donor {donor_path} was measured on a {dk.upper()} ({donor.label}) and {profiler_name} measures on a "
            f"{hk.upper()}: block costs do not carry over between them; give a donor LUT of a {hk.upper()} profiler, "
            f"or build this LUT in full: hwnas profile --profiler {profiler_name} --space {space.name} --out OUT")
    keys = sorted({x.key for x in space.all_layers(resolutions)})
    missing = donor.missing(keys)
    if missing:
        covered = covered_resolutions(donor, space)
        alt = (f", or transfer only the resolutions it covers: --resolutions {' '.join(map(str, covered))}"
               if covered else "")
        raise TransferError(
            f"donor {donor_path} lacks {len(missing)} of the {len(keys)} blocks of space {space.name!r} at resolutions "
            f"{list(resolutions)} (e.g. {missing[0]}); fill the donor first: {fill_command(donor, space, resolutions)}"
            f"{alt}")
    return keys


@dataclass(frozen=True)
class TransferResult:
    """What a transfer did: the LUT written, how many networks and blocks it measured now or reused, the fit's
    leave-one-out error, and the device time spent (networks, drift reference, refinement)."""

    path: Any
    donor: str
    networks: int
    measured_now: int
    resumed: int
    blocks_measured: int
    loo_mape_pct: float
    loo_within_10_pct: float
    device_seconds: dict[str, float]
    seconds: float
    fit: dict[str, Any]
    donor_transferred_from: str | None = None  # the donor is itself a transfer LUT: its own donor

    def lines(self) -> list[str]:
        """What ``hwnas profile --transfer-from`` prints on stdout."""
        loo = (f"leave-one-out MAPE {self.loo_mape_pct:.1f} %, {self.loo_within_10_pct:.0f} % of networks within "
               f"+-10 %" if self.networks > 1 else "no leave-one-out error with one network")
        d = self.device_seconds
        blocks = f", {self.blocks_measured} blocks measured individually" if self.blocks_measured else ""
        return [f"LUT {self.path}: transferred from {self.donor} with {self.networks} networks measured here "
                f"({self.measured_now} now, {self.resumed} resumed){blocks}; {loo}; device time {d['total']:.0f} s "
                f"(networks {d['networks']:.0f} s, drift reference {d['reference']:.0f} s, blocks {d['blocks']:.0f} s);"
                f" this device takes {self.fit['rho']:.3f}x the donor's time overall{self._model()}"]

    def _model(self) -> str:
        """Which of the two fits was written (by leave-one-out error), for the line; nothing for older fits."""
        if self.fit.get("model") == RECALIBRATED:
            return f"; model: the donor's blocks recalibrated ({self.fit.get('calibration_model')})"
        return "; model: per-type ridge" if self.fit.get("model") == MODEL else ""

    def warning(self) -> str | None:
        """For stderr, what to do: when the fit predicts the networks it did not see poorly, and when the donor
        was itself transferred (a fit fitted on a fit)."""
        from hwnas.measuring.calibrate import POOR_FIT_PCT

        chained = (f"WARNING: the donor {self.donor} is itself a transfer (from {self.donor_transferred_from}): "
                   f"errors of both fits add up; a donor built in full is a better prior"
                   if self.donor_transferred_from else None)
        if self.networks <= 1 or self.loo_mape_pct <= POOR_FIT_PCT:
            return chained
        poor = (f"WARNING: the transfer predicts networks it did not see only within {self.loo_mape_pct:.1f} % "
                f"(above {POOR_FIT_PCT:.0f} %): measure more networks (--networks {2 * self.networks}, the measured "
                f"ones are kept), add --time-budget to measure blocks, or build the LUT in full (drop --transfer-from)")
        return f"{chained}\n{poor}" if chained else poor



def _progress_path(out) -> Any:
    from pathlib import Path

    out = Path(out)
    return out.with_name(out.name + PROGRESS_SUFFIX)


def _same_device(state: dict, profiler_name: str, fp: dict, space, settings: dict) -> bool:
    from hwnas.latency.lut import fingerprint_diff

    return (state.get("profiler") == profiler_name and not fingerprint_diff(state.get("fingerprint", {}), fp)
            and state.get("space") == space.to_dict() and state.get("policy") == settings.get("policy"))


def _resume_state(out, progress_path, profiler_name: str, fp: dict, space, settings: dict, force: bool,
                  log) -> dict[str, Any]:
    """Measurements a killed (or smaller, earlier) transfer to ``out`` made on this device, to reuse: from the
    progress file, else from a transfer LUT already at ``out``. A LUT built otherwise at ``out`` is refused."""
    from hwnas.core import jsonio
    from hwnas.latency.lut import LUT, LUTError

    state: dict[str, Any] = {"rows": {}, "blocks": {}, "reference": None, "reference_seconds": 0.0}
    if force:
        return state
    if out.exists():
        try:
            old = LUT.load(out)
        except LUTError as e:
            raise LUTError(f"{e}\n(--force starts a new transfer at {out}, discarding the file)") from None
        if not old.transfer:
            raise TransferError(f"{out} is a LUT built by measuring every block; a transfer would replace it: choose "
                                f"another --out, or --force to replace it")
        if _same_device({"profiler": old.profiler, "fingerprint": old.fingerprint, "space": old.space,
                         "policy": old.settings.get("policy")}, profiler_name, fp, space, settings):
            for r in (old.calibration or {}).get("data", []):
                state["rows"][r["arch_id"]] = {k: r[k] for k in ("arch_id", "arch", "measured", "seconds") if k in r}
            for k in old.transfer.get("measured_blocks", []):
                state["blocks"][k] = old.entries[k]
            state["reference"] = old.reference
            state["reference_seconds"] = float(old.transfer.get("device_seconds", {}).get("reference", 0.0))
        else:
            raise TransferError(f"{out} is a transfer LUT of another device, profiler or space; choose another --out, "
                                f"or --force to replace it")
    if progress_path.is_dir():
        raise TransferError(f"{progress_path} (where this transfer saves its measurements) is a directory; remove it "
                            f"or choose another --out")
    if progress_path.exists():
        try:
            saved = jsonio.loads_file(progress_path, TransferError, "a transfer's progress file")
        except TransferError as e:
            saved = None
            log(f"discarding {progress_path}: {e}; its measurements are taken again")
        if isinstance(saved, dict) and _same_device(saved, profiler_name, fp, space, settings):
            rows, blocks, reference, dropped = _usable_progress(saved, space)
            if dropped:
                log(f"discarding {dropped} damaged measurement(s) in {progress_path} (edited or corrupt); they are "
                    f"taken again")
            state["rows"].update(rows)
            state["blocks"].update(blocks)
            if reference:
                state["reference"], state["reference_seconds"] = reference
        elif saved is not None:
            log(f"discarding {progress_path}: it holds measurements of another device, profiler, space or timing "
                f"policy")
    return state


def _seconds(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 else 0.0


def _usable_progress(saved: dict, space) -> tuple[dict, dict, tuple | None, int]:
    """What of a progress file can be reused: rows (whole networks) whose arch is of ``space`` with its id and a
    positive finite median, blocks that pass a LUT entry's checks, a well-formed drift reference; and how many
    were dropped. A damaged row must not reach the fit (a median of -1 made a LUT 57 % off, a missing one
    an internal error after the drift reference was measured)."""
    from hwnas.latency.lut import LUTError, _check_entry, _check_reference

    rows, blocks, dropped = {}, {}, 0
    saved_rows = saved.get("rows") if isinstance(saved.get("rows"), dict) else {}
    for key, r in saved_rows.items():
        try:
            m = r["measured"]
            med = m["median_ms"]
            if not (isinstance(med, (int, float)) and not isinstance(med, bool) and math.isfinite(med) and med > 0):
                raise ValueError(med)
            if space.arch_from_dict(r["arch"], source="progress").id != key or r.get("arch_id") != key:
                raise ValueError(key)
            rows[key] = {"arch_id": key, "arch": r["arch"], "measured": m, "seconds": _seconds(r.get("seconds"))}
        except (KeyError, TypeError, ValueError, AttributeError, InputError):  # damaged: measured again
            dropped += 1
    saved_blocks = saved.get("blocks") if isinstance(saved.get("blocks"), dict) else {}
    for key, e in saved_blocks.items():
        try:
            _check_entry(key, e, "progress")
            blocks[key] = {**e, "seconds": _seconds(e.get("seconds"))}
        except LUTError:
            dropped += 1
    dropped += (not isinstance(saved.get("rows", {}), dict)) + (not isinstance(saved.get("blocks", {}), dict))
    reference = None
    if saved.get("reference"):
        try:
            _check_reference(saved["reference"], "progress")
            reference = (saved["reference"], _seconds(saved.get("reference_seconds")))
        except LUTError:
            dropped += 1
    return rows, blocks, reference, dropped


def transfer_lut(donor_path, profiler_name: str | None, out, *, space=None, networks: int = 20,
                 resolutions: Sequence[int] | None = None, profiler_options: dict[str, Any] | None = None,
                 processes: int = 2, seed: int = 0, time_budget_s: float | None = None,
                 max_refine_blocks: int | None = None, reference: bool = True, force: bool = False,
                 command: str | None = None, progress: bool = True, log=None) -> TransferResult:
    """Write at ``out`` a LUT of ``profiler_name`` on this device fitted from ``donor_path`` and ``networks``
    whole networks measured here (``processes`` fresh processes each, lowest median; 0: in this process).

    ``time_budget_s``: the device time of the whole transfer; what the networks and the drift reference leave
    is spent measuring the blocks the fit is least sure of (uncertainty x how often networks hold them), refitting
    after every few. Measurements are saved as they come (a progress file beside ``out``, removed at the end), so
    a killed transfer run again with the same command measures only what it had not.
    """
    import sys
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    from hwnas.core import jsonio
    from hwnas.measuring.sampling import sample_archs
    from hwnas.core.files import atomic_write_text
    from hwnas.latency.lut import LUT, content_digest, content_table, now_iso
    from hwnas.measuring.measure import arch_measurer, available_profiler, in_process_settings, profiler_options as popts
    from hwnas.measuring.profiling import entry_from

    log = log or (lambda s: print(s, file=sys.stderr))
    start = time.perf_counter()
    out, donor_path = Path(out), Path(donor_path)
    if out.is_dir():
        raise TransferError(f"--out {out} is a directory; give the LUT's file path, e.g. {out / 'my-lut.json'}")
    if out.resolve() == donor_path.resolve():
        raise TransferError(f"--out {out} is the donor itself; write the transfer LUT to another file")
    donor = LUT.load(donor_path)
    space = space or donor.search_space()
    profiler_name = profiler_name or donor.profiler
    resolutions = tuple(resolutions) if resolutions else tuple(space.resolutions)
    options = dict(profiler_options if profiler_options is not None else popts(1))
    want = options.get("precision", "fp32")
    if donor.precision != want:  # a LUT never mixes precisions: int8 block costs are no prior for fp32 ones
        from hwnas.measuring.precision import check_same

        check_same(f"donor {donor_path}", donor.precision, "this transfer", want,
                   f"add --precision {donor.precision} to transfer at the donor's precision (ort-cpu, ort-mobile), "
                   f"or give a donor LUT built at {want}" if donor.precision != "fp32" else
                   f"give a donor LUT built at {want} (hwnas profile --precision {want}), or drop --precision")
    profiler = available_profiler(profiler_name, options)
    fp = profiler.fingerprint()
    keys = check_donor(donor, donor_path, space, resolutions, profiler_name, fp)
    settings = dict(profiler.settings()) if hasattr(profiler, "settings") else {}
    if isinstance(networks, bool) or not isinstance(networks, int) or not 1 <= networks <= MAX_NETWORKS:
        raise TransferError(f"--networks must be a whole number from 1 to {MAX_NETWORKS}, got {networks!r} (20 "
                            f"networks: about a minute of device time for demo/mbv3; beyond {MAX_NETWORKS} a full "
                            f"build costs less: drop --transfer-from)")
    ppath = _progress_path(out)
    state = _resume_state(out, ppath, profiler_name, fp, space, settings, force, log)

    def save_progress() -> None:
        atomic_write_text(ppath, jsonio.dumps({"format": "hwnas-transfer-progress", "profiler": profiler_name,
                                               "fingerprint": fp, "space": space.to_dict(),
                                               "policy": settings.get("policy"), "donor": str(donor_path),
                                               **state}, indent=1) + "\n")

    design = Design(donor, space, keys)
    pool = sample_archs(space, POOL, seed, resolutions, extremes=False)
    chosen = choose_networks(design, pool, space_extremes(space, resolutions), networks)
    rows: dict[str, dict] = state["rows"]
    todo = [a for a in chosen if a.id not in rows]
    resumed = len(chosen) - len(todo)
    passes = max(1, processes)
    if resumed:
        log(f"transfer: {resumed} of {len(chosen)} networks already measured on this device; measuring "
            f"{len(todo)}")
    bar = tqdm(desc=f"transfer {profiler_name}: measuring {len(todo)} networks x {passes} process(es)", unit="net",
               total=len(todo) * passes, disable=not progress or not todo, dynamic_ncols=True)
    measure = arch_measurer(profiler_name, options, processes, bar)
    step = 10 if processes > 0 else 1
    try:
        for i in range(0, len(todo), step):
            batch = todo[i:i + step]
            t0 = time.perf_counter()
            got = measure(batch)
            per = (time.perf_counter() - t0) / len(batch)
            for a, m in zip(batch, got):
                rows[a.id] = {"arch_id": a.id, "arch": a.to_dict(), "measured": m.to_dict(), "seconds": round(per, 3)}
            save_progress()
    finally:
        bar.close()

    lut = LUT(profiler=profiler_name, settings=settings, fingerprint=fp, space=space.to_dict(),
              command=command or " ".join(sys.argv), path=out)
    if reference and not state.get("reference"):
        from hwnas.measuring.drift import record_reference

        log("recording the drift reference: 3 networks in fresh processes (as every LUT)")
        t0 = time.perf_counter()
        state["reference"] = record_reference(lut, options, seed=seed)
        state["reference_seconds"] = round(time.perf_counter() - t0, 3)
        save_progress()
    lut.reference = state.get("reference") if reference else None

    C, io, nb = design.counts(chosen)
    y = np.array([rows[a.id]["measured"]["median_ms"] for a in chosen])
    index = design.index
    blocks: dict[str, dict] = state["blocks"]

    def current_fit() -> tuple[TransferFit, np.ndarray, np.ndarray]:
        mask, mvals = np.zeros(len(keys)), np.zeros(len(keys))
        for k, e in blocks.items():
            if k in index:
                mask[index[k]], mvals[index[k]] = 1.0, e["median_ms"]
        return fit_transfer(design, C, io, nb, y, mask, mvals), mask, mvals

    net_s = float(sum(rows[a.id].get("seconds", 0.0) for a in chosen))
    fit, mask, mvals = current_fit()
    refined_now = 0
    if time_budget_s is not None:
        left = time_budget_s - net_s - float(state.get("reference_seconds", 0.0)) - sum(
            float(e.get("seconds", 0.0)) for e in blocks.values())
        pool_C, _, _ = design.counts(pool[:200])
        freq = pool_C.mean(axis=0)
        per_block = None
        rbar = tqdm(desc=f"refining: blocks the transfer is least sure of ({left:.0f} s left)", unit="block",
                    disable=not progress or left <= 0, dynamic_ncols=True)
        try:
            while left > 0:
                cap = None if max_refine_blocks is None else max_refine_blocks - refined_now
                if cap is not None and cap <= 0:
                    break
                importance = block_uncertainty(design, fit) * freq * (1.0 - mask)
                order = [keys[j] for j in np.argsort(-importance) if importance[j] > 0]
                n_b = min(REFINE_BATCH, len(order), cap if cap is not None else REFINE_BATCH)
                if per_block is not None:
                    n_b = min(n_b, int(left // per_block))
                if n_b <= 0:
                    break
                batch = order[:n_b]
                t0 = time.perf_counter()
                ms = _measure_blocks(profiler_name, options, processes, batch, profiler, in_process_settings)
                spent = time.perf_counter() - t0
                per_block = spent / n_b
                for k, m in zip(batch, ms):
                    blocks[k] = {**entry_from(m, passes), "passes": passes, "measured": True,
                                 "seconds": round(per_block, 3)}
                refined_now += n_b
                left -= spent
                rbar.update(n_b)
                rbar.set_description(f"refining: blocks the transfer is least sure of ({max(0.0, left):.0f} s left)")
                save_progress()
                fit, mask, mvals = current_fit()
        finally:
            rbar.close()
        if refined_now == 0 and left <= 0:
            log(f"transfer: the {len(chosen)} networks and the drift reference took {time_budget_s - left:.0f} s of "
                f"--time-budget {time_budget_s:.0f} s; no blocks refined")

    # -- which model: the per-type fit, or the donor's blocks under a refitted calibration -------------------
    # The per-type fit holds the calibration-only refit as a special case but is ridge-regularised toward the
    # donor; where the devices differ mostly in per-network overhead (ort-cpu -> torch-cpu: 76 % within +-10 %
    # against the refit's 100 % at N = 20, docs/fidelity/transfer_demo_ort-cpu_to_torch-cpu.json) the prior
    # costs more than it gives. Both are judged the same way, by leave-one-out error over the N networks, and
    # the better one is written. Individually measured blocks (--time-budget) only the per-type fit can use.
    recal = recalibrated_donor(design, C, io, nb, y) if not blocks else None
    use_recal = recal is not None and (not math.isfinite(fit.loo_mape_pct) or recal.loo_mape_pct < fit.loo_mape_pct)
    # -- the LUT: every block of the space, fitted (or measured), and the transfer's calibration -------------
    if use_recal:
        for j, k in enumerate(keys):  # entries in this device's ms; the donor's spread scaled alike
            e = donor.entries[k]
            r = float(recal.block_ms[j] / e["median_ms"])
            lut.entries[k] = {"median_ms": round(float(recal.block_ms[j]), 6), "p10_ms": round(e["p10_ms"] * r, 6),
                              "p90_ms": round(e["p90_ms"] * r, 6), "std_ms": round(e["std_ms"] * r, 6),
                              "cv": e["cv"], "n": e["n"], "transferred": True}
        coef = recal.coef
        model_name = f"transfer:{recal.model}"
        loo_scores = {"transfer": round(fit.loo_mape_pct, 3) if math.isfinite(fit.loo_mape_pct) else None,
                      **recal.scores}
    else:
        est = design.block_ms(fit.theta)
        sd = block_uncertainty(design, fit)
        for j, k in enumerate(keys):
            if k in blocks:
                lut.entries[k] = dict(blocks[k])
                continue
            e = donor.entries[k]
            r = float(est[j] / e["median_ms"])
            lut.entries[k] = {"median_ms": round(float(est[j]), 6), "p10_ms": round(e["p10_ms"] * r, 6),
                              "p90_ms": round(e["p90_ms"] * r, 6), "std_ms": round(e["std_ms"] * r, 6),
                              "cv": e["cv"], "n": e["n"], "transferred": True, "sd_ms": round(float(sd[j]), 6)}
        coef = design.calibration_coef(fit.theta)
        model_name = "transfer"
        loo_scores = {"transfer": round(fit.loo_mape_pct, 3) if math.isfinite(fit.loo_mape_pct) else None}
        if recal is not None:
            loo_scores.update(recal.scores)
    entry_ms = np.array([lut.entries[k]["median_ms"] for k in keys])
    F = feature_rows(entry_ms, C, io, nb)
    pred = F @ coef
    lut.calibration = {
        "model": model_name, "coef": [float(c) for c in coef], "features": list(FEATURES), "seed": seed,
        "n_archs": len(chosen), "processes": processes,
        "data": [{**rows[a.id], "features": [round(float(v), 6) for v in f]} for a, f in zip(chosen, F)],
        "loo_mape_pct": loo_scores,
        "fit_mape_pct": round(float(np.mean(np.abs(pred - y) / y) * 100), 3),
        "uncalibrated_mape_pct": round(float(np.mean(np.abs(F[:, 0] - y) / y) * 100), 3),
        "fitted": now_iso(), "complete": True}
    lut.calibration["loo_mape_pct"] = {k: v for k, v in loo_scores.items() if v is not None}
    device_s = {"networks": round(net_s, 1), "reference": round(float(state.get("reference_seconds", 0.0)), 1),
                "blocks": round(sum(float(e.get("seconds", 0.0)) for e in blocks.values()), 1)}
    device_s["total"] = round(sum(device_s.values()), 1)
    summary = fit.summary(design)
    loo = (fit.loo_mape_pct, fit.loo_within_10_pct, fit.loo_errors_pct)
    if use_recal:
        summary = {"model": RECALIBRATED, "calibration_model": recal.model, "rho": round(recal.rho, 6),
                   "loo_mape_pct": round(recal.loo_mape_pct, 3), "loo_within_10_pct": round(recal.loo_within_10_pct, 1),
                   "fit_mape_pct": lut.calibration["fit_mape_pct"],
                   "per_type_fit": {k: v for k, v in summary.items() if k != "model"}}
        loo = (recal.loo_mape_pct, recal.loo_within_10_pct, recal.loo_errors_pct)
    lut.settings = {**settings, "isolation": (f"{processes} fresh process(es) per network, lowest median kept"
                                              if processes else "in one process"),
                    "transfer": f"fitted from {donor_path.name} and {len(chosen)} networks measured here"}
    lut.transfer = {
        "donor": {"path": str(donor_path), "profiler": donor.profiler, "label": _device_label(donor),
                  "cpu_model": donor.fingerprint.get("cpu_model"), "cpu_flags": donor.fingerprint.get("cpu_flags"),
                  "digest": content_digest(content_table(donor)),
                  **({"transferred_from": donor.transfer["donor"].get("path")} if donor.transfer else {})},
        "networks": len(chosen), "seed": seed, "resolutions": list(resolutions),
        "loo_mape_pct": round(loo[0], 3) if math.isfinite(loo[0]) else None,
        "loo_within_10_pct": round(loo[1], 1) if math.isfinite(loo[1]) else None,
        "loo_errors_pct": loo[2], **{k: v for k, v in summary.items() if not k.startswith("loo")},
        "measured_blocks": sorted(blocks), "time_budget_s": time_budget_s, "device_seconds": device_s,
        "created": now_iso()}
    lut.save(out)
    LUT.load(out)  # what was written reads back (the calibration predicts > 0 ms for its own networks)
    try:
        ppath.unlink()
    except FileNotFoundError:
        pass
    return TransferResult(out, str(donor_path), len(chosen), len(todo), resumed, len(blocks),
                          loo[0], loo[1], device_s, time.perf_counter() - start, summary,
                          donor.transfer["donor"].get("path") if donor.transfer else None)


def _device_label(lut) -> str:
    """'ort-cpu on AMD EPYC [avx2 fma]': the donor's device, distinguishable from this one by its CPU flags."""
    fp = lut.fingerprint
    flags = f" [{fp['cpu_flags']}]" if fp.get("cpu_flags") and not fp.get("gpu") else ""
    return f"{lut.profiler} on {fp.get('gpu') or fp.get('cpu_model', '?')}{flags}"


def _measure_blocks(profiler_name: str, options: dict, processes: int, keys: Sequence[str], profiler,
                    in_process_settings) -> list:
    """Blocks timed individually as a LUT build times them: ``processes`` passes of fresh processes, lowest
    median (0: in this process)."""
    if processes <= 0:
        with in_process_settings(profiler):
            return [profiler.measure(LayerDesc.from_key(k).build(), LayerDesc.from_key(k).input_shape) for k in keys]
    from hwnas.measuring.isolate import measure_isolated

    return measure_isolated(profiler_name, options, "layer", list(keys), passes=processes, chunk=len(keys))
