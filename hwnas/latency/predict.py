"""Predict a network's latency from a LUT: the sum of its blocks, then the LUT's calibration.

Per-block cost depends only on (resolution, width, stage, first-or-later block,
kernel, expand), so the predictor turns the LUT into dense tables once and
predicts many architectures with a numpy gather: no per-layer Python objects on
the hot path of a search.
"""
from __future__ import annotations

import itertools
import math
import shlex
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from hwnas.core.errors import InputError
from hwnas.spaces.blocks import LayerDesc
from hwnas.latency.lut import FEATURES, LUT, LUTError
from hwnas.spaces.base import kind_part
from hwnas.spaces.mbv3 import MBv3Arch, MBv3Space


class MissingEntriesError(InputError):
    """The LUT lacks blocks an architecture needs; never priced as 0."""

    def __init__(self, missing: Sequence[str], command: str):
        self.missing = list(missing)
        self.command = command
        shown = ", ".join(self.missing[:5]) + (f" … (+{len(self.missing) - 5} more)" if len(self.missing) > 5 else "")
        if not self.missing:  # a choice (a resolution, say) the LUT's space does not have at all
            super().__init__(f"the LUT does not cover this architecture: one of its choices (its resolution, "
                             f"say) is not in the LUT's space or not profiled. Fill it with: {command}")
            return
        super().__init__(f"the LUT has no entry for {len(self.missing)} block(s) this architecture needs: {shown}. "
                         f"Fill them with: {command}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def io_melems(d: LayerDesc) -> float:
    """Elements a block reads and writes at its boundary, in millions (what layout conversions cost)."""
    out = d.cout if len(d.output_shape) == 2 else d.cout * d.out_res**2
    return (d.cin * d.res**2 + out) / 1e6


def not_finite_error(lut: LUT | None, ms: float, lut_sum_finite: bool, arch_id: str | None = None) -> LUTError:
    """A prediction that overflowed (or is NaN with every block present): an error naming the LUT file and the
    field whose numbers made it, never ``predicted inf ms`` (issue 47)."""
    where = "its 'entries' (median_ms)" if not lut_sum_finite else "its field 'calibration' (coef)"
    of = f" for arch {arch_id}" if arch_id else ""
    return LUTError(f"{getattr(lut, 'path', None) or 'the LUT'}: the predicted latency{of} is {ms} ms, not a finite number: "
                    f"{where} hold numbers too large to add up; the file was edited or is corrupt: rebuild it "
                    f"(hwnas profile ... --force), or refit its calibration (--recalibrate)")


@dataclass(frozen=True)
class Calibration:
    """``measured ≈ features @ coef`` over :data:`FEATURES`; identity when the LUT has none."""

    coef: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    model: str = "none"
    lut: LUT | None = field(default=None, compare=False, repr=False)  # named in the error of a non-finite result

    @classmethod
    def from_lut(cls, lut: LUT) -> "Calibration":
        c = lut.calibration
        if not c or not c.get("coef"):
            return cls(lut=lut)
        return cls(tuple(float(v) for v in c["coef"]), c.get("model", "?"), lut)  # type: ignore[arg-type]

    def apply(self, feats: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = feats @ np.asarray(self.coef)
        bad = ~np.isfinite(out)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise not_finite_error(self.lut, float(out[i]), bool(np.isfinite(feats[i, 0])))
        return out


class MBv3LatencyPredictor:
    """The MobileNetV3 kind's dense fast path: the LUT as tables indexed by (resolution, width, block
    position, kernel, expand), so many archs (or a gene matrix) are priced with one numpy gather."""

    def __init__(self, lut: LUT, space: MBv3Space | None = None, calibrated: bool = True):
        self.lut = lut
        self.space = space or lut.search_space()
        self.calibration = Calibration.from_lut(lut) if calibrated else Calibration(lut=lut)
        sp = self.space
        S, D = len(sp.stages), sp.max_depth
        shape = (len(sp.resolutions), len(sp.width_mults), S, 2, len(sp.kernels), len(sp.expands))
        # feature tables: [..., 0] lut ms, [..., 1] io Melems, [..., 2] block count
        self._blk = np.full(shape + (3,), np.nan)
        self._fixed = np.full((len(sp.resolutions), len(sp.width_mults), 3), np.nan)
        entries = lut.entries
        for ri, r in enumerate(sp.resolutions):
            for wi, w in enumerate(sp.width_mults):
                for ki, k in enumerate(sp.kernels):
                    for ei, e in enumerate(sp.expands):
                        arch = MBv3Arch(sp, r, w, tuple((k,) * D for _ in sp.stages), tuple((e,) * D for _ in sp.stages))
                        layers = sp.layers(arch)
                        fixed = [layers[0], layers[1], layers[-2], layers[-1]]
                        if ki == 0 and ei == 0:
                            self._fixed[ri, wi] = self._feats(fixed, entries)
                        body = layers[2:-2]
                        for s in range(S):
                            for pos in (0, 1):
                                d = body[s * D + pos]
                                self._blk[ri, wi, s, pos, ki, ei] = self._feats([d], entries)
        self._pos = np.minimum(np.arange(D), 1)
        self._stage = np.arange(S)
        self._latency_tables()

    def _latency_tables(self) -> None:
        """The calibration is linear, so each block's calibrated cost is a number: one flat table
        [(resolution, width), (stage, first-or-later), kernel x expand + 1 (inactive: 0 ms)] that
        :meth:`predict_genes` gathers from, and the fixed layers' cost per (resolution, width)."""
        sp, coef = self.space, np.asarray(self.calibration.coef)
        self._tables_coef = self.calibration.coef
        R, W, S, K, E = len(sp.resolutions), len(sp.width_mults), len(sp.stages), len(sp.kernels), len(sp.expands)
        table = np.zeros((R * W, S * 2, K * E + 1))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is said by the prediction, naming the LUT
            table[..., :K * E] = (self._blk @ coef[:3]).reshape(R * W, S * 2, K * E)
            self._lat_fixed = (self._fixed @ coef[:3] + coef[3]).ravel()
        self._lat_blocks = table.ravel()
        # per block slot (stage s, position i): its offset in a (resolution, width) slice of the table
        self._slot_offset = ((np.arange(S)[:, None] * 2 + self._pos[None, :]) * (K * E + 1)).ravel()

    @staticmethod
    def _feats(descs: Sequence[LayerDesc], entries: dict) -> list[float]:
        ms = sum(entries[d.key]["median_ms"] if d.key in entries else np.nan for d in descs)
        return [ms, sum(io_melems(d) for d in descs), float(len(descs))]

    # -- encoding ------------------------------------------------------------
    def _own(self, archs: Sequence[MBv3Arch]) -> Sequence[MBv3Arch]:
        """``archs`` as archs of this predictor's space: an arch's genes index its own space's choice lists,
        so one from an equal-shaped space with other lists (a LUT's restricted resolutions) is rebuilt here,
        wherever it sits in the batch."""
        sp = self.space
        if all(a.space is sp for a in archs):
            return archs
        return [a if a.space is sp or a.space == sp else MBv3Arch(sp, a.resolution, a.width, a.kernels, a.expands)
                for a in archs]

    def indices(self, archs: Sequence[MBv3Arch]) -> tuple[np.ndarray, ...]:
        """Archs as integer gene arrays: resolution idx, width idx, kernel idx [N,S,D], expand idx, mask."""
        sp = self.space
        n, S, D = len(archs), len(sp.stages), sp.max_depth
        archs = self._own(archs)
        try:
            G = sp.gene_matrix(archs)
        except ValueError as e:  # a choice this space does not have (e.g. a resolution the LUT lacks)
            raise MissingEntriesError([], self.fill_command()) from e
        depths = np.asarray(sp.depths)[G[:, 2:2 + S]]
        mask = np.arange(D)[None, None, :] < depths[:, :, None]
        k = G[:, 2 + S::2].reshape(n, S, D)
        e = G[:, 3 + S::2].reshape(n, S, D)
        return G[:, 0], G[:, 1], k, e, mask

    def features_many(self, archs: Sequence[MBv3Arch]) -> np.ndarray:
        """Raw (uncalibrated) features, shape [N, 4]: LUT sum in ms, boundary Melems, blocks, 1."""
        r, w, k, e, mask = self.indices(archs)
        rr, ww = r[:, None, None], w[:, None, None]
        blk = self._blk[rr, ww, self._stage[None, :, None], self._pos[None, None, :], k, e]  # [N,S,D,3]
        feats = np.where(mask[..., None], blk, 0.0).sum(axis=(1, 2)) + self._fixed[r, w]
        bad = np.isnan(feats[:, 0])
        if bad.any():
            arch = archs[int(np.flatnonzero(bad)[0])]
            self._raise_missing(arch)
        return np.concatenate([feats, np.ones((len(archs), 1))], axis=1)

    # -- prediction ----------------------------------------------------------
    def predict_many(self, archs: Sequence[MBv3Arch]) -> np.ndarray:
        """Predicted latency in ms for each arch."""
        if len(archs) == 0:
            return np.zeros(0)
        sp = self.space
        archs = self._own(archs)
        try:
            G = sp.gene_matrix(archs, compact=True)
        except ValueError as e:  # a choice this space does not have (e.g. a resolution the LUT lacks)
            raise MissingEntriesError([], self.fill_command()) from e
        return self._predict_genes(G, archs)

    def predict_genes(self, G: np.ndarray) -> np.ndarray:
        """Predicted latency in ms for each row of a gene matrix [N, genes] (:meth:`MBv3Space.gene_matrix`,
        :meth:`MBv3Arch.genes`): the search's fast path, no archs needed."""
        ub = np.asarray(self.space.gene_upper_bounds())
        G = np.asarray(G, dtype=np.intp).reshape(-1, len(ub))
        outside = ((G < 0) | (G > ub)).any(1)
        if outside.any():
            raise InputError(f"gene row {G[outside][0].tolist()} lies outside the space's bounds 0..{ub.tolist()}")
        return self._predict_genes(G, None)

    def _predict_genes(self, G: np.ndarray, archs: Sequence[MBv3Arch] | None) -> np.ndarray:
        sp = self.space
        if self.calibration.coef != self._tables_coef:  # a calibration set after construction
            self._latency_tables()
        S, D, o = len(sp.stages), sp.max_depth, 2 + len(sp.stages)
        E, KE1 = len(sp.expands), len(sp.kernels) * len(sp.expands) + 1
        rw = G[:, 0].astype(np.intp) * len(sp.width_mults) + G[:, 1]  # G may be compact (uint8): widen first
        depth = np.asarray(sp.depths)[G[:, 2:o]]
        active = np.arange(D)[None, None, :] < depth[:, :, None]  # [N, S, D]
        ke = np.where(active.reshape(len(G), S * D), G[:, o::2].astype(np.intp) * E + G[:, o + 1::2], KE1 - 1)
        idx = (rw * (S * 2 * KE1))[:, None] + self._slot_offset + ke
        with np.errstate(over="ignore", invalid="ignore"):
            out = self._lat_fixed[rw] + self._lat_blocks[idx].sum(1)
        bad = ~np.isfinite(out)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            arch = archs[i] if archs is not None else sp.from_genes(G[i])
            if not self.lut.missing([d.key for d in arch.layers()]):  # every block there: the numbers overflowed
                raise not_finite_error(self.lut, float(out[i]), self._lut_sum_finite(arch), arch.id)
            self._raise_missing(arch)
        return out

    def _lut_sum_finite(self, arch: MBv3Arch) -> bool:
        with np.errstate(over="ignore"):
            return bool(np.isfinite(sum(self.lut.median(d.key) for d in arch.layers())))

    def predict(self, arch: MBv3Arch) -> float:
        return float(self.predict_many([arch])[0])

    def breakdown(self, arch: MBv3Arch) -> list[tuple[str, float]]:
        """(layer key, LUT median ms) for each layer, in order."""
        keys = [d.key for d in arch.layers()]
        missing = self.lut.missing(keys)
        if missing:
            self._raise_missing(arch)
        return [(k, self.lut.median(k)) for k in keys]

    def fill_command(self, resolutions: Sequence[int] | None = None) -> str:
        return fill_command(self.lut, self.space, resolutions)

    def _raise_missing(self, arch: MBv3Arch) -> None:
        missing = self.lut.missing([d.key for d in arch.layers()])
        raise MissingEntriesError(missing, self.fill_command([arch.resolution]))

    def fastest(self) -> tuple[MBv3Arch, float]:
        """The arch with the lowest predicted latency, exactly.

        The calibrated latency is linear in per-block features, so it is a sum of
        per-block terms: pick, per (resolution, width), the cheapest (kernel,
        expand) per block position and the cheapest depth per stage.
        """
        sp, coef = self.space, np.asarray(self.calibration.coef)
        blk = self._blk @ coef[:3]                         # [R, W, S, 2, K, E]
        fixed = self._fixed @ coef[:3] + coef[3]           # [R, W]
        best = (None, np.inf)
        for ri, r in enumerate(sp.resolutions):
            for wi, w in enumerate(sp.width_mults):
                if np.isnan(fixed[ri, wi]) or np.isnan(blk[ri, wi]).all(axis=(-1, -2)).any():
                    continue  # this LUT does not cover (resolution, width)
                total, kernels, expands = fixed[ri, wi], [], []
                for s in range(len(sp.stages)):
                    options = []
                    for d in sp.depths:
                        ks, es, cost = [], [], 0.0
                        for i in range(d):
                            table = blk[ri, wi, s, min(i, 1)]
                            ki, ei = np.unravel_index(np.nanargmin(table), table.shape)
                            ks.append(sp.kernels[ki]), es.append(sp.expands[ei])
                            cost += table[ki, ei]
                        options.append((cost, ks, es))
                    cost, ks, es = min(options, key=lambda o: o[0])
                    total += cost
                    kernels.append(tuple(ks)), expands.append(tuple(es))
                if total < best[1]:
                    best = (MBv3Arch(sp, r, w, tuple(kernels), tuple(expands)), float(total))
        arch = best[0]
        if arch is None:
            raise MissingEntriesError([], self.fill_command())
        return arch, self.predict(arch)  # also raises if the LUT lacks its blocks


class Predictor(Protocol):
    """What search, finalize and the tools need of a latency predictor, whatever the space."""

    lut: LUT
    space: Any
    calibration: Calibration

    def features_many(self, archs: Sequence) -> np.ndarray: ...
    def predict_many(self, archs: Sequence) -> np.ndarray: ...
    def predict(self, arch) -> float: ...
    def breakdown(self, arch) -> list[tuple[str, float]]: ...
    def fill_command(self, resolutions: Sequence[int] | None = None) -> str: ...
    def fastest(self) -> tuple[Any, float]: ...


class LayerSumPredictor:
    """Any kind of space: the LUT entries of ``arch.layers()`` summed, then the LUT's calibration.

    The generic path of the space protocol (a cell space uses it; for ``mbv3`` it agrees with
    :class:`MBv3LatencyPredictor`'s dense tables to 1e-9, which is tested). Per arch it walks the layer
    list in Python (about 10^4 archs/s), so spaces that search at scale get a dense fast path.
    """

    def __init__(self, lut: LUT, space=None, calibrated: bool = True):
        self.lut = lut
        self.space = space or lut.search_space()
        self.calibration = Calibration.from_lut(lut) if calibrated else Calibration(lut=lut)
        self._cache: dict[str, tuple[float, float, float]] = {}  # layer key -> (ms, io Melems, 1)

    def _layer(self, d: LayerDesc) -> tuple[float, float, float]:
        f = self._cache.get(d.key)
        if f is None:
            e = self.lut.entries.get(d.key)
            f = self._cache[d.key] = (e["median_ms"] if e else np.nan, io_melems(d), 1.0)
        return f

    def features_many(self, archs: Sequence) -> np.ndarray:
        """Raw (uncalibrated) features, shape [N, 4]: LUT sum in ms, boundary Melems, blocks, 1."""
        out = np.ones((len(archs), len(FEATURES)))
        for n, a in enumerate(archs):
            if a.resolution not in self.space.resolutions:
                raise MissingEntriesError([], self.fill_command())
            with np.errstate(over="ignore"):  # an overflow is said by Calibration.apply, naming the LUT
                out[n, :3] = np.sum([self._layer(d) for d in a.layers()], axis=0)
            if np.isnan(out[n, 0]):
                self._raise_missing(a)
        return out

    def predict_many(self, archs: Sequence) -> np.ndarray:
        if len(archs) == 0:
            return np.zeros(0)
        return self.calibration.apply(self.features_many(archs))

    def predict(self, arch) -> float:
        return float(self.predict_many([arch])[0])

    def breakdown(self, arch) -> list[tuple[str, float]]:
        keys = [d.key for d in arch.layers()]
        if self.lut.missing(keys):
            self._raise_missing(arch)
        return [(k, self.lut.median(k)) for k in keys]

    def fill_command(self, resolutions: Sequence[int] | None = None) -> str:
        return fill_command(self.lut, self.space, resolutions)

    def _raise_missing(self, arch) -> None:
        raise MissingEntriesError(self.lut.missing([d.key for d in arch.layers()]), self.fill_command([arch.resolution]))

    def fastest(self) -> tuple[object, float]:
        """The arch with the lowest predicted latency, exactly: every arch of the space is priced
        (``all_archs()`` where the space offers it, else every gene vector up to ``gene_upper_bounds()``:
        any kind; a cell-demo space has 15,625), at the resolutions the LUT covers."""
        covered = set(covered_resolutions(self.lut, self.space))
        if not covered:
            raise MissingEntriesError([], self.fill_command())
        sp = self.space
        if hasattr(sp, "all_archs"):
            size, archs = getattr(sp, "size", lambda: 0)(), sp.all_archs
        else:  # the Space protocol's genes: a plugin kind needs nothing more to be searched
            bounds = sp.gene_upper_bounds()
            size = math.prod(u + 1 for u in bounds)
            archs = lambda: map(sp.from_genes, itertools.product(*(range(u + 1) for u in bounds)))  # noqa: E731
        if size > FASTEST_EXACT_LIMIT:
            raise SpaceTooLarge(f"space {sp.name!r} has {size:,} archs, more than the {FASTEST_EXACT_LIMIT:,} priced "
                                f"one by one to find the fastest: give its kind a fast path with its own fastest()")
        best, best_ms = None, np.inf
        batch: list = []
        for a in archs():
            if a.resolution in covered:
                batch.append(a)
            if len(batch) == 4096:
                best, best_ms = _keep_min(batch, self.predict_many(batch), best, best_ms)
                batch = []
        if batch:
            best, best_ms = _keep_min(batch, self.predict_many(batch), best, best_ms)
        return best, float(best_ms)


class CellLatencyPredictor(LayerSumPredictor):
    """The cell space's fast path: the same model as the layer sum (tested to agree to 1e-9), on gene
    matrices. A cell network's features are its fixed blocks (stem, reductions, head) plus, per stage and
    cell, each live edge's op, one ``add`` per extra node input and (computed edges) one ``zero`` per node
    that ``none`` edges leave; live edges are found for all archs at once with boolean reachability over the
    nodes."""

    def __init__(self, lut: LUT, space=None, calibrated: bool = True):
        super().__init__(lut, space, calibrated)
        from hwnas.spaces.cells import edge_desc, fixed_layers, stage_shapes

        sp = self.space
        R, S, O = len(sp.resolutions), len(sp.channels), len(sp.ops)
        self._fixed = np.zeros((R, 3))
        self._op = np.zeros((R, S, O, 3))    # per edge op at a stage: ms, io Melems, blocks (skip/none: 0)
        self._add = np.zeros((R, S, 3))
        self._zero = np.zeros((R, S, 3))      # a computed space's x * 0 per source node (pruned: never)
        computed = sp.dead_edges == "computed"
        for ri, r in enumerate(sp.resolutions):
            stem, reductions, head = fixed_layers(sp, r)
            self._fixed[ri] = np.sum([self._layer(d) for d in [stem, *reductions, head]], axis=0)
            for si, (c, rs) in enumerate(stage_shapes(sp, r)):
                for oi, op in enumerate(sp.ops):
                    d = edge_desc(op, c, rs)
                    if d is not None:
                        self._op[ri, si, oi] = self._layer(d)
                self._add[ri, si] = self._layer(LayerDesc("add", c, c, rs, act="none"))
                if computed:
                    self._zero[ri, si] = self._layer(LayerDesc("zero", c, c, rs, act="none"))
        self._none = sp.ops.index("none") if "none" in sp.ops else -1

    def features_from_genes(self, G: np.ndarray) -> np.ndarray:
        """Raw features [N, 4] of gene rows [N, 1 + edges] (resolution index, op index per edge)."""
        from hwnas.spaces.cells import live_mask, node_adds, zero_blocks

        G = np.asarray(G, dtype=np.intp)
        r, ops = G[:, 0], G[:, 1:]
        live = live_mask(self.space, ops != self._none)
        adds = node_adds(self.space, live)
        zeros = zero_blocks(self.space, ops == self._none)
        cost = self._op[r[:, None, None], np.arange(self._op.shape[1])[None, :, None], ops[:, None, :]]
        per_stage = np.where(live[:, None, :, None], cost, 0.0).sum(axis=2)      # [N, S, 3]; dead edges: free
        per_stage += np.where(adds[:, None, None] > 0, adds[:, None, None] * self._add[r], 0.0)
        per_stage += np.where(zeros[:, None, None] > 0, zeros[:, None, None] * self._zero[r], 0.0)
        feats = self._fixed[r] + self.space.cells_per_stage * per_stage.sum(axis=1)
        if self.space.dead_edges == "pruned":  # no path: a constant network, priced at nothing (CellArch.layers())
            feats[~live.any(axis=1)] = 0.0
        return np.concatenate([feats, np.ones((len(G), 1))], axis=1)

    def features_many(self, archs: Sequence) -> np.ndarray:
        if len(archs) == 0:
            return np.zeros((0, len(FEATURES)))
        sp = self.space
        res = {r: i for i, r in enumerate(sp.resolutions)}
        if any(a.resolution not in res for a in archs):
            raise MissingEntriesError([], self.fill_command())
        if all(a.space is sp for a in archs):
            G = np.array([a.genes() for a in archs])
        else:  # genes index each arch's own space's lists (a restricted copy has other resolutions)
            op = {o: i for i, o in enumerate(sp.ops)}
            G = np.array([[res[a.resolution]] + [op[o] for o in a.ops] for a in archs])
        feats = self.features_from_genes(G)
        bad = np.isnan(feats[:, 0])
        if bad.any():
            self._raise_missing(archs[int(np.flatnonzero(bad)[0])])
        return feats

    def fastest(self) -> tuple[object, float]:
        """Every arch of the space priced at once (15,625 cells per resolution for 6 edges of 5 ops)."""
        sp = self.space
        profiled = covered_resolutions(self.lut, sp)
        covered = [ri for ri, r in enumerate(sp.resolutions) if r in profiled]
        if not covered:
            raise MissingEntriesError([], self.fill_command())
        if len(sp.ops) ** len(sp.edges) * len(covered) > FASTEST_EXACT_LIMIT:
            raise SpaceTooLarge(
                f"space {sp.name!r} has {len(sp.ops)}^{len(sp.edges)} cells per resolution: too many to find its "
                f"fastest arch exactly (limit {FASTEST_EXACT_LIMIT:,}); use fewer nodes or ops")
        best_g, best_ms = None, np.inf
        combos = itertools.product(range(len(sp.ops)), repeat=len(sp.edges))
        while True:
            ops = np.array(list(itertools.islice(combos, 200_000)), dtype=np.intp)
            if not len(ops):
                break
            for ri in covered:
                G = np.column_stack([np.full(len(ops), ri), ops])
                ms = self.calibration.apply(self.features_from_genes(G))
                i = int(np.argmin(ms))
                if ms[i] < best_ms:
                    best_g, best_ms = G[i], ms[i]
        best = sp.from_genes(best_g)
        return best, self.predict(best)


FASTEST_EXACT_LIMIT = 5_000_000  # archs priced to find a cell space's fastest (4 nodes x 5 ops: 15,625)


class SpaceTooLarge(InputError):
    """A space too large to enumerate for its fastest arch."""


def _keep_min(archs: Sequence, ms: np.ndarray, best, best_ms: float):
    i = int(np.argmin(ms))
    return (archs[i], ms[i]) if ms[i] < best_ms else (best, best_ms)


def latency_predictor(lut: LUT, space=None, calibrated: bool = True) -> Predictor:
    """The predictor for ``space`` (default: the LUT's): its kind's dense fast path where it brings one
    (``mbv3``, ``cell``: :class:`hwnas.spaces.base.KindParts`), else the generic layer sum."""
    space = space or lut.search_space()
    return (kind_part(space, "latency_predictor") or LayerSumPredictor)(lut, space, calibrated)


def fill_command(lut: LUT, space, resolutions: Sequence[int] | None = None) -> str:
    """The exact command that fills the LUT's missing entries (for ``space``, at ``resolutions``): ``profile --out``
    the same LUT for its own space; for another space (a new class count, a few other blocks) a LUT derived from
    this one (``profile --lut``), which measures only the blocks it lacks and copies the rest."""
    from hwnas.spaces.base import get_space, list_spaces, space_file_of

    shipped = space.name in list_spaces() and get_space(space.name).to_dict() == space.to_dict()
    source = space_file_of(space)
    space_arg = (f"--space {space.name}" if shipped else
                 f"--space-file {shlex.quote(source[0])}" + (f" --data {shlex.quote(source[1])}" if source[1] else "")
                 if source else "--space-file SPACE.json")
    res = f" --resolutions {' '.join(str(r) for r in resolutions)}" if resolutions else ""
    out = lut.path or Path("LUT.json")
    if lut.space != space.to_dict():  # profile fills a LUT only with blocks of its own space: derive a new file
        new = Path(out).with_name(f"{Path(out).stem}_{space.name}.json")
        return f"hwnas profile --lut {shlex.quote(str(out))} {space_arg}{res} --out {shlex.quote(str(new))}"
    threads = lut.settings.get("threads", 1)
    return (f"hwnas profile --profiler {lut.profiler} {space_arg}{res} --threads {threads} "
            f"--out {shlex.quote(str(out))}")


def covered_resolutions(lut: LUT, space) -> tuple[int, ...]:
    """Resolutions for which the LUT holds every block of the space."""
    return tuple(r for r in space.resolutions if not lut.missing([d.key for d in space.all_layers([r])]))
