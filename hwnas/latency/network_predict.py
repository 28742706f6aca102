"""The network kind's fast path: the same model as the layer sum (tested to agree to 1e-9), priced a stage
at a time from a cache, and its fastest arch found exactly by dynamic programming over the stages.

A network arch's features (LUT ms, boundary Melems, blocks) are the sum of its blocks', and a stage's blocks
depend only on its choices, its input width and its resolution. So a stage's features are cached by that
key, and an arch is priced with a handful of lookups; and since the calibration is linear in the features,
the fastest arch is the cheapest path through the stage positions (state: the width the last stage left).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hwnas.latency.lut import FEATURES, LUT
from hwnas.latency.predict import LayerSumPredictor, MissingEntriesError, covered_resolutions
from hwnas.spaces.network import NetworkArch, Stage, _out, compile_stage


class NetworkLatencyPredictor(LayerSumPredictor):
    """Layer-sum prediction for ``"kind": "network"`` spaces with per-stage caching and an exact ``fastest``."""

    def __init__(self, lut: LUT, space=None, calibrated: bool = True):
        super().__init__(lut, space, calibrated)
        self._stage: dict[tuple, tuple[float, float, float]] = {}
        self._ends: dict[tuple, tuple[float, float, float]] = {}

    def _sum(self, descs: Sequence[Any]) -> tuple[float, float, float]:
        ms = io = n = 0.0
        for d in descs:
            a, b, c = self._layer(d)
            ms, io, n = ms + a, io + b, n + c
        return ms, io, n

    def _stage_features(self, p: int, st: Stage, cin: int, res: int) -> tuple[float, float, float]:
        key = (p, st, cin, res)
        f = self._stage.get(key)
        if f is None:
            nodes, _ = compile_stage(self.space, st, cin, res, self.space.strides[p], 0, -1)
            f = self._stage[key] = self._sum(n.desc for n in nodes)
        return f

    def _end(self, what: str, a: int, b: int) -> tuple[float, float, float]:
        key = (what, a, b)
        f = self._ends.get(key)
        if f is None:
            sp = self.space
            f = self._ends[key] = self._sum([sp._stem(a) if what == "stem" else sp._head(a, b)])
        return f

    def features_many(self, archs: Sequence[NetworkArch]) -> np.ndarray:
        """Raw (uncalibrated) features, shape [N, 4], as :class:`LayerSumPredictor` computes them."""
        sp = self.space
        out = np.ones((len(archs), len(FEATURES)))
        for n, a in enumerate(archs):
            if a.resolution not in sp.resolutions:
                raise MissingEntriesError([], self.fill_command())
            ms, io, k = self._end("stem", a.resolution, 0)
            res, cin = _out(a.resolution, sp.stem_stride), sp.stem_width
            for p, st in enumerate(a.stages):
                f = self._stage_features(p, st, cin, res)
                ms, io, k = ms + f[0], io + f[1], k + f[2]
                res, cin = _out(res, sp.strides[p]), st.width
            f = self._end("head", cin, res)
            out[n, 0], out[n, 1], out[n, 2] = ms + f[0], io + f[1], k + f[2]
            if out[n, 0] != out[n, 0]:
                self._raise_missing(a)
        return out

    def fastest(self) -> tuple[NetworkArch, float]:
        """The arch of lowest calibrated latency, exactly: per resolution, the cheapest choice of every stage
        for each width the stage before can leave (dynamic programming), ended by the head."""
        sp = self.space
        covered = covered_resolutions(self.lut, sp)
        if not covered:
            raise MissingEntriesError([], self.fill_command())
        w = np.asarray(self.calibration.coef, float)

        def cost(f: tuple[float, float, float]) -> float:
            return f[0] * w[0] + f[1] * w[1] + f[2] * w[2]

        best: tuple[float, NetworkArch | None] = (np.inf, None)
        for r0 in covered:
            start = cost(self._end("stem", r0, 0))
            res = _out(r0, sp.stem_stride)
            frontier: dict[int, tuple[float, tuple[Stage, ...]]] = {sp.stem_width: (start, ())}
            for p in range(sp.max_stages):
                nxt: dict[int, tuple[float, tuple[Stage, ...]]] = {}
                for cin, (c0, stages) in frontier.items():
                    for st in _stage_options(sp, p):
                        c = c0 + cost(self._stage_features(p, st, cin, res))
                        if c == c and c < nxt.get(st.width, (np.inf,))[0]:
                            nxt[st.width] = (c, stages + (st,))
                res = _out(res, sp.strides[p])
                frontier = nxt
                if p + 1 in sp.stage_counts:
                    for width, (c, stages) in frontier.items():
                        total = c + cost(self._end("head", width, res))
                        if total < best[0]:
                            best = (total, NetworkArch(sp, r0, stages))
        if best[1] is None:
            raise MissingEntriesError([], self.fill_command())
        return best[1], self.predict(best[1])


def _stage_options(sp: Any, p: int):
    seen = set()
    for t in sp.layer_types[p]:
        for d in sp.depths:
            for w in sp.widths[p]:
                for k in sp.kernels:
                    for e in sp.expands:
                        for c in sp.connections:
                            st = NetworkArch(sp, sp.resolutions[0], (Stage(t, d, w, k, e, c),)).canonical().stages[0]
                            if st not in seen:
                                seen.add(st)
                                yield st
