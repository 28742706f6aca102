"""The mixed kind's fast path: the same model as the layer sum (tested to agree to 1e-9), on gene matrices.

A mixed network's features are its stem, reduction blocks and head (fixed by the macro genes) plus, per
stage, its cell count times one cell's: each live edge's op and one ``add`` per extra node input at the
stage's width and resolution. Live edges come from the cell's ops once per arch (boolean reachability,
as for cell spaces); tables per (resolution, stage position, width) make the rest gathers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hwnas.latency.lut import FEATURES, LUT
from hwnas.latency.predict import LayerSumPredictor, MissingEntriesError, covered_resolutions
from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.cells import edge_desc, live_mask, node_adds, zero_blocks


class MixedLatencyPredictor(LayerSumPredictor):
    def __init__(self, lut: LUT, space=None, calibrated: bool = True):
        super().__init__(lut, space, calibrated)
        sp = self.space
        R, P, W, O = len(sp.resolutions), sp.max_stages, max(len(w) for w in sp.widths), len(sp.ops)
        nan3 = (np.nan,) * 3
        self._stem = np.full((R, W, 3), np.nan)
        self._red = np.full((R, P, W, W, 3), np.nan)    # [res, stage, previous width, width]
        self._op = np.zeros((R, P, W, O, 3))
        self._add = np.full((R, P, W, 3), np.nan)
        self._zero = np.zeros((R, P, W, 3))  # a computed micro space's x * 0 per source node (pruned: never)
        self._head = np.full((R, P, W, 3), np.nan)
        for ri, res in enumerate(sp.resolutions):
            r = res
            for p, ws in enumerate(sp.widths):
                for wi, w in enumerate(ws):
                    if p == 0:
                        self._stem[ri, wi] = self._layer(sp.stem(res, w))
                    else:
                        for vi, v in enumerate(sp.widths[p - 1]):
                            self._red[ri, p, vi, wi] = self._layer(sp.reduction(v, w, 2 * r))
                    for oi, op in enumerate(sp.ops):
                        d = edge_desc(op, w, r)
                        self._op[ri, p, wi, oi] = self._layer(d) if d is not None else (0.0, 0.0, 0.0)
                    self._add[ri, p, wi] = self._layer(LayerDesc("add", w, w, r, act="none"))
                    if sp.micro.dead_edges == "computed":
                        self._zero[ri, p, wi] = self._layer(LayerDesc("zero", w, w, r, act="none"))
                    self._head[ri, p, wi] = self._layer(sp.head(w, r)) if p + 1 in sp.stage_counts else nan3
                r //= 2

    def features_from_genes(self, G: np.ndarray) -> np.ndarray:
        """Raw features [N, 4] of gene rows (resolution, stage count, (width, depth) per position, op per edge)."""
        sp = self.space
        G = np.asarray(G, dtype=np.intp)
        n, P = len(G), sp.max_stages
        ri = G[:, 0]
        count = np.asarray(sp.stage_counts)[G[:, 1]]
        wi, di = G[:, 2:2 + 2 * P:2], G[:, 3:3 + 2 * P:2]
        depth = np.asarray(sp.depths)[di]
        ops = G[:, 2 + 2 * P:]
        none = sp.ops.index("none") if "none" in sp.ops else -1
        live = live_mask(sp.micro, ops != none)
        adds = node_adds(sp.micro, live)
        zeros = zero_blocks(sp.micro, ops == none)
        feats = self._stem[ri, wi[:, 0]].copy()
        rows = np.arange(n)
        for p in range(P):
            on = count > p
            cost = self._op[ri[:, None], p, wi[:, p][:, None], ops]                  # [N, E, 3]
            cell = (np.where(live[:, :, None], cost, 0.0).sum(axis=1) + adds[:, None] * self._add[ri, p, wi[:, p]]
                    + zeros[:, None] * self._zero[ri, p, wi[:, p]])
            stage = depth[:, p, None] * cell
            if p:
                stage = stage + self._red[ri, p, wi[:, p - 1], wi[:, p]]
            feats += np.where(on[:, None], stage, 0.0)
        last = count - 1
        feats += self._head[ri, last, wi[rows, last]]
        return np.concatenate([feats, np.ones((n, 1))], axis=1)

    def features_many(self, archs: Sequence) -> np.ndarray:
        if len(archs) == 0:
            return np.zeros((0, len(FEATURES)))
        sp = self.space
        if any(a.resolution not in sp.resolutions for a in archs):
            raise MissingEntriesError([], self.fill_command())
        feats = self.features_from_genes(np.array([a.genes() for a in archs]))
        bad = np.flatnonzero(np.isnan(feats[:, 0]))
        if len(bad):
            self._raise_missing(archs[int(bad[0])])
        return feats

    def fastest(self):
        """Exactly: for every cell at once (ops^edges of them), the cheapest macro by dynamic programming over
        the stage positions (state: the last stage's width; a stage's cell count is the smallest, or the
        largest where a cell is priced below zero); then that cell's macro searched exhaustively."""
        import itertools

        sp = self.space
        covered = covered_resolutions(self.lut, sp)
        if not covered:
            raise MissingEntriesError([], self.fill_command())
        w = np.asarray(self.calibration.coef, float)[:3]
        cells = np.array(list(itertools.product(range(len(sp.ops)), repeat=len(sp.edges))), dtype=np.intp)
        none = sp.ops.index("none") if "none" in sp.ops else -1
        live = live_mask(sp.micro, cells != none)
        adds = node_adds(sp.micro, live)
        zeros = zero_blocks(sp.micro, cells == none)
        dmin, dmax = min(sp.depths), max(sp.depths)
        best_cell, best_res, best_ms = None, None, np.inf
        for res in covered:
            ri = sp.resolutions.index(res)
            prev = None
            for p, ws in enumerate(sp.widths):
                stage = []
                for wi in range(len(ws)):
                    cost = (np.where(live, (self._op[ri, p, wi] @ w)[cells], 0.0).sum(axis=1)
                            + adds * (self._add[ri, p, wi] @ w) + zeros * (self._zero[ri, p, wi] @ w))
                    cells_cost = np.where(cost >= 0, dmin * cost, dmax * cost)
                    into = self._stem[ri, wi] @ w if p == 0 else np.min(
                        [prev[vi] + self._red[ri, p, vi, wi] @ w for vi in range(len(sp.widths[p - 1]))], axis=0)
                    stage.append(into + cells_cost)
                prev = stage
                if p + 1 in sp.stage_counts:
                    total = np.min([stage[wi] + self._head[ri, p, wi] @ w for wi in range(len(ws))], axis=0)
                    total = np.where(live.any(axis=1), total, np.inf)
                    i = int(np.argmin(total))
                    if total[i] < best_ms:
                        best_cell, best_res, best_ms = cells[i], ri, float(total[i])
        if best_cell is None:
            raise MissingEntriesError([], self.fill_command())
        rows = []
        for ci, c in enumerate(sp.stage_counts):
            per = [list(itertools.product(range(len(sp.widths[p])), range(len(sp.depths)))) for p in range(c)]
            for combo in itertools.product(*per):
                flat = [g for wd in combo for g in wd] + [0, 0] * (sp.max_stages - c)
                rows.append([best_res, ci] + flat + list(best_cell))
        G = np.array(rows, dtype=np.intp)
        ms = self.calibration.apply(self.features_from_genes(G))
        arch = sp.from_genes(G[int(np.nanargmin(ms))])
        return arch, self.predict(arch)
