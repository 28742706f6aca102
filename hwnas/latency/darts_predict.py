"""The DARTS kind's fast path: the same model as the layer sum (tested to agree to 1e-9), on gene matrices.

A DARTS network's blocks are its fixed ones (stem, each cell's preprocessing, adds and concatenation, the
head) plus one block per operation of the genotype, whose key depends only on the op, on whether it reads
a cell input (stride 2 in a reduction cell) and on the cell's place. The same genotype runs at every place
of its type, so each (cell type, op, reads an input) has one feature vector summed over those places:
an arch is priced with two table gathers, and its fastest genotype is the cheapest op and input pair of
each node, chosen node by node (nodes do not interact in the cost).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hwnas.latency.lut import FEATURES, LUT
from hwnas.latency.predict import LayerSumPredictor, MissingEntriesError, covered_resolutions
from hwnas.spaces.darts import CELL_TYPES, DartsArch


class DartsLatencyPredictor(LayerSumPredictor):
    def __init__(self, lut: LUT, space=None, calibrated: bool = True):
        super().__init__(lut, space, calibrated)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _table(self, res: int) -> tuple[np.ndarray, np.ndarray]:
        """(fixed features [3], op features [cell type, op, reads an input, 3]) at resolution ``res``."""
        if res not in self._tables:
            sp = self.space
            fixed = np.zeros(3)
            ops = np.zeros((len(CELL_TYPES), len(sp.ops), 2, 3))
            for d in (sp._stem(res), sp._head(res)):
                fixed += self._layer(d)
            for pos in sp.positions(res):
                fixed += np.sum([self._layer(d) for d in pos.fixed_layers(sp)], axis=0)
                t = CELL_TYPES.index(pos.type)
                for o, op in enumerate(sp.ops):
                    for on_input in (0, 1):
                        d = pos.op_layer(op, bool(on_input))
                        if d is not None:
                            ops[t, o, on_input] += self._layer(d)
            self._tables[res] = (fixed, ops)
        return self._tables[res]

    def features_many(self, archs: Sequence[DartsArch]) -> np.ndarray:
        sp = self.space
        out = np.ones((len(archs), len(FEATURES)))
        if not len(archs):
            return out
        op_index = {o: i for i, o in enumerate(sp.ops)}
        for res in {a.resolution for a in archs}:
            if res not in sp.resolutions:
                raise MissingEntriesError([], self.fill_command())
            rows = [n for n, a in enumerate(archs) if a.resolution == res]
            fixed, table = self._table(res)
            ops = np.array([[[op_index[op] for op, _ in getattr(archs[n], t)] for t in CELL_TYPES] for n in rows])
            reads = np.array([[[int(j < 2) for _, j in getattr(archs[n], t)] for t in CELL_TYPES] for n in rows])
            types = np.arange(len(CELL_TYPES))[None, :, None]
            out[rows, :3] = fixed + table[types, ops, reads].sum(axis=(1, 2))
        bad = np.flatnonzero(np.isnan(out[:, 0]))
        if len(bad):
            self._raise_missing(archs[int(bad[0])])
        return out

    def fastest(self) -> tuple[DartsArch, float]:
        """Per resolution the cheapest genotype, node by node; the fastest resolution's."""
        sp = self.space
        covered = covered_resolutions(self.lut, sp)
        if not covered:
            raise MissingEntriesError([], self.fill_command())
        w = np.asarray(self.calibration.coef, float)[:3]
        best: tuple[float, DartsArch | None] = (np.inf, None)
        for res in covered:
            fixed, table = self._table(res)
            cost = table @ w  # [cell type, op, reads an input]
            cells = []
            total = float(fixed @ w)
            for t in range(len(CELL_TYPES)):
                cell: list[tuple[str, int]] = []
                for i in range(sp.nodes):
                    options = [(cost[t, oa, int(a < 2)] + cost[t, ob, int(b < 2)], (sp.ops[oa], a), (sp.ops[ob], b))
                               for a, b in sp.pairs(i) for oa in range(len(sp.ops)) for ob in range(len(sp.ops))]
                    c, pa, pb = min(options, key=lambda o: o[0])
                    cell += [pa, pb]
                    total += c
                cells.append(tuple(cell))
            if total < best[0]:
                best = (total, DartsArch(sp, res, *cells))
        return best[1], self.predict(best[1])
