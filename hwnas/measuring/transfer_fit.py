"""The few-shot transfer's fit (numpy only): which networks to measure, and the donor's blocks fitted to them.

The transfer itself (measuring, resuming, writing the LUT) is :mod:`hwnas.measuring.transfer`.

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
  only blocks measured individually (``--device-time``) can move it.

The two ridge strengths (types, additive terms) are chosen by leave-one-out error over the networks, among fits
that price every block and network > 0; a grid point of 1e4 nests "the donor scaled by one factor". Rows are
relative errors (a 5 % miss on a 1 ms network counts as much as on a 50 ms one), as in hwnas.measuring.calibrate.

The networks are chosen, not sampled: the space's smallest and largest, then donor-predicted latency quantiles
0.5, 0.25, 0.75, 0.125, ... of a seeded pool, each pick within its quantile window the one that most increases
the information of the fit (sequential D-optimal: block types not yet seen), so every prefix spans the latency
range and the block types, and a transfer with more networks re-uses the earlier ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from hwnas.core.errors import InputError
from hwnas.spaces.blocks import LayerDesc
from hwnas.latency.predict import FEATURES, io_melems

LAMBDA_TYPES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 1e4)
LAMBDA_ADDITIVE = (0.01, 0.1, 1.0, 10.0, 1e4)
MODEL = "per-type-ridge"
RECALIBRATED = "donor-blocks-recalibrated"  # the donor's blocks, scaled, under hwnas.measuring.calibrate's model
# The least share of the donor's time a transferred block may take. A transfer goes CPU to CPU or GPU to GPU: no
# such pair is 1000x apart, and a fit that says so (a block of 1.1e-05 ms, issue 47) has fitted noise.
MIN_RATIO = 1e-3


class ImplausibleFit(InputError):
    """No fit of the networks is physically plausible (a per-type scale <= 0, a block next to free): nothing
    may be written as a LUT. hwnas.measuring.transfer says what to do."""


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
    implausible: str | None = None  # why even the most constrained fit is not physically plausible (None: it is)

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
    why = None
    if best is None:  # nothing plausible: the donor scaled by one factor (rho alone), the most constrained fit
        lt = la = 1e12
        pen = design.penalties(lt, la)
        theta = _solve(X, t, w, pen, prior)
        errs = [((Xn[i] @ theta + offset[i]) - y[i]) / y[i] * 100 for i in range(N)]
        best = (float(np.mean(np.abs(errs))), lt, la, theta, errs)
        why = implausible(design, design.block_ms(theta), type_scales(design, theta)) or (
            None if _plausible(design, theta, Xn, offset) else
            "it prices a network it was fitted on at <= 0 ms, or its isolation factor is <= 0.05")
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
                       float(np.mean(fit_err)), [round(float(e), 3) for e in errs], cov, list(design.types), why)


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


# ridge strengths tried for donor+counts (on standardised columns, times the number of networks)
LAMBDA_COUNTS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def _counts_ridge(F: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Relative-error ridge on standardised columns of ``F`` (its last column the constant, unpenalised)."""
    X = F[:, :-1]
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    A = np.column_stack([(X - mu) / sd, np.ones(len(y))]) / y[:, None]
    pen = np.eye(A.shape[1]) * lam * len(y)
    pen[-1, -1] = 0.0
    b = np.linalg.solve(A.T @ A + pen, A.T @ np.ones(len(y)))
    return np.concatenate([b[:-1] / sd, [b[-1] - float(np.sum(b[:-1] * mu / sd))]])


def donor_plus_counts(design: Design, C: np.ndarray,
                      y: np.ndarray) -> tuple[float, np.ndarray, float, list[float]] | None:
    """``donor+counts``: each block the donor's cost times one factor plus a cost per block of its type (only
    types whose count differs between the networks: the others are one constant with the network's own), a
    ridge whose strength is chosen by leave-one-out. For a device whose per-op cost does not follow the donor's
    (a GPU at batch 256 against a CPU donor: on HELP's data a ridge over op counts alone ranked those at 0.98-0.999
    where the donor's blocks did 0.58). Returns (LOO MAPE, block ms, ms per network, LOO errors), or None: too few
    networks, or no plausible fit (the factor <= 0, a block near free, a network <= 0 ms)."""
    CT = C @ design.T
    varying = CT.std(axis=0) > 0
    F = np.column_stack([C @ design.d, CT[:, varying], np.ones(len(y))])
    if len(y) < F.shape[1] + 3:
        return None
    best = None
    for lam in LAMBDA_COUNTS:
        errs = _loo_errors(F, y, lambda f, t, lam=lam: _counts_ridge(f, t, lam))
        score = float(np.mean(np.abs(errs)))
        if best is None or score < best[0] - 1e-9:
            best = (score, lam, errs)
    score, lam, errs = best
    w = _counts_ridge(F, y, lam)
    block = w[0] * design.d + design.T[:, varying] @ w[1:-1]
    if not (w[0] > 0 and np.all(F @ w > 0)) or implausible(design, block) is not None:
        return None
    return score, block, float(w[-1]), errs


def recalibrated_donor(design: Design, C: np.ndarray, io: np.ndarray, n: np.ndarray,
                       y: np.ndarray) -> Recalibration | None:
    """The best of the refits that keep the donor's blocks, by leave-one-out MAPE over the networks: its raw
    block sums under calibrate's models (scale, affine, boundary), ``donor+macs`` (each block the donor's
    cost times one factor plus one cost per MAC, with the boundary terms: for a device whose cost structure
    differs, as an emulated board whose compute costs more than its memory traffic) and ``donor+counts`` (a
    cost per block of each type beside the donor's: :func:`donor_plus_counts`). None below 2 networks."""
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
    counted = donor_plus_counts(design, C, y)
    if counted is not None:
        mape_c, block_c, const_c, errs_c = counted
        scores["transfer:donor+counts"] = round(mape_c, 3)
        if mape_c < best[0]:
            rho_c = float(np.median((C @ block_c) / (C @ design.d)))  # the networks' block sums, as the others
            best = (mape_c, "donor+counts", np.array([1.0, 0.0, 0.0, const_c]), block_c, rho_c, errs_c)
    mape, model, coef, block, rho, errs = best
    if implausible(design, block) is not None and model != "scale":  # a boundary fit that prices blocks at ~0 ms
        coef = fit(F, y, "scale")
        errs = _loo_errors(F, y, lambda f, t: fit(f, t, "scale"))
        mape, model, block, rho = float(np.mean(np.abs(errs))), "scale", design.d * coef[0], float(coef[0])
    if implausible(design, block) is not None:
        return None
    coef = np.array([1.0, *coef[1:]])  # the block sum's scale lives in block_ms
    a = np.abs(errs)
    return Recalibration(model, coef, block, scores, mape, float(np.mean(a <= 10.0) * 100),
                         [round(e, 3) for e in errs], rho)


@dataclass
class TransferModel:
    """The model a transfer writes: block costs (ms, this device) and the calibration over their features."""

    block_ms: np.ndarray
    coef: np.ndarray
    recalibration: "Recalibration | None"  # the donor's blocks recalibrated (None with measured blocks)
    recalibrated: bool                     # ... and it won on leave-one-out: it is the model

    def predict(self, C: np.ndarray, io: np.ndarray, n: np.ndarray) -> np.ndarray:
        return feature_rows(self.block_ms, C, io, n) @ self.coef


def transfer_model(design: Design, C: np.ndarray, io: np.ndarray, n: np.ndarray, y: np.ndarray,
                   fit: TransferFit, measured_blocks: bool = False) -> TransferModel:
    """Which model: the per-type fit, or the donor's blocks under a refitted calibration. The per-type fit
    holds the calibration-only refit as a special case but is ridge-regularised toward the donor; where the
    devices differ mostly in per-network overhead (ort-cpu -> torch-cpu: 76 % within +-10 % against the
    refit's 100 % at N = 20, docs/fidelity/transfer_demo_ort-cpu_to_torch-cpu.json) the prior costs more than
    it gives. Both are judged the same way, by leave-one-out error over the N networks, and the better one is
    taken. Individually measured blocks (``measured_blocks``) only the per-type fit can use."""
    recal = recalibrated_donor(design, C, io, n, y) if not measured_blocks else None  # None unless plausible
    why = fit.implausible or implausible(design, design.block_ms(fit.theta), type_scales(design, fit.theta))
    if recal is not None and (why or not math.isfinite(fit.loo_mape_pct) or recal.loo_mape_pct < fit.loo_mape_pct):
        return TransferModel(np.asarray(recal.block_ms, float), np.asarray(recal.coef, float), recal, True)
    if why:  # neither model is physically plausible: no LUT (hwnas.measuring.transfer says what to do)
        raise ImplausibleFit(why)
    return TransferModel(design.block_ms(fit.theta), np.asarray(design.calibration_coef(fit.theta), float), recal,
                         False)


def _plausible(design: Design, theta: np.ndarray, Xn: np.ndarray, offset: np.ndarray) -> bool:
    return bool(1.0 + theta[1] > 0.05 and np.all(Xn @ theta + offset > 0) and design.calibration_coef(theta)[0] > 0
                and implausible(design, design.block_ms(theta), type_scales(design, theta)) is None)


def type_scales(design: Design, theta: np.ndarray) -> dict[str, float]:
    """Each block type's scale of the donor's time under ``theta`` (rho + its deviation)."""
    return {t: float(theta[0] + theta[2 + i]) for i, t in enumerate(design.types)}


def implausible(design: Design, block_ms: np.ndarray, scales: dict[str, float] | None = None) -> str | None:
    """Why a transferred LUT is not physically plausible, or None: a per-type scale <= 0 (a block type whose cost
    here falls as the donor's rises: the MAC term alone kept its blocks > 0, issue 47), or a block priced below
    :data:`MIN_RATIO` of the donor's time (or not at all)."""
    bad = {t: v for t, v in (scales or {}).items() if not v > 0}
    if bad:
        shown = ", ".join(f"{t} {v:.3g}x" for t, v in list(bad.items())[:3]) + (" …" if len(bad) > 3 else "")
        return (f"{len(bad)} of {len(scales or {})} block types would take a negative or zero share of the donor's "
                f"time ({shown})")
    block_ms = np.asarray(block_ms, float)
    ratio = np.where(np.isfinite(block_ms), block_ms, -np.inf) / design.d
    j = int(np.argmin(ratio))
    if not ratio[j] >= MIN_RATIO:
        return (f"block {design.keys[j]} would take {block_ms[j]:.3g} ms, {ratio[j]:.3g}x the donor's "
                f"{design.d[j]:.4g} ms")
    return None


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
    taken = np.zeros(len(cand), bool)
    taken[chosen] = True
    for q, half in _vdc_quantiles(max(0, n - len(chosen))):  # arrays, not lists: --suggest 10000 is seconds
        free = order[~taken[order]]
        if not len(free):
            break
        window = free[np.abs(rank[free] - q) <= half]
        window = window if len(window) else free
        inv = np.linalg.inv(info)
        gains = np.einsum("ij,jk,ik->i", rows[window], inv, rows[window])
        i = int(window[int(np.argmax(gains))])
        taken[i] = True
        take(i)
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
