"""Predict a network's latency from a LUT: the sum of its blocks, then the LUT's calibration.

Per-block cost depends only on (resolution, width, stage, first-or-later block,
kernel, expand), so the predictor turns the LUT into dense tables once and
predicts many architectures with a numpy gather: no per-layer Python objects on
the hot path of a search.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hwnas.errors import InputError
from hwnas.blocks import LayerDesc
from hwnas.lut import LUT
from hwnas.space import Arch, SearchSpace

# Raw features per network, in this order; the calibration is linear in them.
FEATURES = ("lut_sum_ms", "io_melems", "blocks", "one")


class MissingEntriesError(InputError):
    """The LUT lacks blocks an architecture needs; never priced as 0."""

    def __init__(self, missing: Sequence[str], command: str):
        self.missing = list(missing)
        self.command = command
        shown = ", ".join(self.missing[:5]) + (f" … (+{len(self.missing) - 5} more)" if len(self.missing) > 5 else "")
        super().__init__(f"the LUT has no entry for {len(self.missing)} block(s) this architecture needs: {shown}. "
                         f"Fill them with: {command}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def io_melems(d: LayerDesc) -> float:
    """Elements a block reads and writes at its boundary, in millions (what layout conversions cost)."""
    out = d.cout if d.op == "head" else d.cout * d.out_res**2
    return (d.cin * d.res**2 + out) / 1e6


@dataclass(frozen=True)
class Calibration:
    """``measured ≈ features @ coef`` over :data:`FEATURES`; identity when the LUT has none."""

    coef: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    model: str = "none"

    @classmethod
    def from_lut(cls, lut: LUT) -> "Calibration":
        c = lut.calibration
        if not c or not c.get("coef"):
            return cls()
        return cls(tuple(float(v) for v in c["coef"]), c.get("model", "?"))  # type: ignore[arg-type]

    def apply(self, feats: np.ndarray) -> np.ndarray:
        return feats @ np.asarray(self.coef)


class LatencyPredictor:
    def __init__(self, lut: LUT, space: SearchSpace | None = None, calibrated: bool = True):
        self.lut = lut
        self.space = space or lut.search_space()
        self.calibration = Calibration.from_lut(lut) if calibrated else Calibration()
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
                        arch = Arch(sp, r, w, tuple((k,) * D for _ in sp.stages), tuple((e,) * D for _ in sp.stages))
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

    @staticmethod
    def _feats(descs: Sequence[LayerDesc], entries: dict) -> list[float]:
        ms = sum(entries[d.key]["median_ms"] if d.key in entries else np.nan for d in descs)
        return [ms, sum(io_melems(d) for d in descs), float(len(descs))]

    # -- encoding ------------------------------------------------------------
    def indices(self, archs: Sequence[Arch]) -> tuple[np.ndarray, ...]:
        """Archs as integer gene arrays: resolution idx, width idx, kernel idx [N,S,D], expand idx, mask."""
        sp = self.space
        n, S, D = len(archs), len(sp.stages), sp.max_depth
        if archs and archs[0].space is not sp and archs[0].space != sp:
            archs = [Arch(sp, a.resolution, a.width, a.kernels, a.expands) for a in archs]
        try:
            G = sp.gene_matrix(archs)
        except ValueError as e:  # a choice this space does not have (e.g. a resolution the LUT lacks)
            raise MissingEntriesError([], self.fill_command()) from e
        depths = np.asarray(sp.depths)[G[:, 2:2 + S]]
        mask = np.arange(D)[None, None, :] < depths[:, :, None]
        k = G[:, 2 + S::2].reshape(n, S, D)
        e = G[:, 3 + S::2].reshape(n, S, D)
        return G[:, 0], G[:, 1], k, e, mask

    def features_many(self, archs: Sequence[Arch]) -> np.ndarray:
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
    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency in ms for each arch."""
        if len(archs) == 0:
            return np.zeros(0)
        return self.calibration.apply(self.features_many(archs))

    def predict(self, arch: Arch) -> float:
        return float(self.predict_many([arch])[0])

    def breakdown(self, arch: Arch) -> list[tuple[str, float]]:
        """(layer key, LUT median ms) for each layer, in order."""
        keys = [d.key for d in arch.layers()]
        missing = self.lut.missing(keys)
        if missing:
            self._raise_missing(arch)
        return [(k, self.lut.median(k)) for k in keys]

    def fill_command(self, resolutions: Sequence[int] | None = None) -> str:
        lut = self.lut
        space_arg = f"--space {self.space.name}" if self.space.name in ("mbv3", "demo") else "--space-file SPACE.json"
        res = f" --resolutions {' '.join(str(r) for r in resolutions)}" if resolutions else ""
        threads = lut.settings.get("threads", 1)
        return (f"python tools/profile_device.py --profiler {lut.profiler} {space_arg}{res} --threads {threads} "
                f"--out {lut.path or 'LUT.json'}")

    def _raise_missing(self, arch: Arch) -> None:
        missing = self.lut.missing([d.key for d in arch.layers()])
        raise MissingEntriesError(missing, self.fill_command([arch.resolution]))

    def fastest(self) -> tuple[Arch, float]:
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
                    best = (Arch(sp, r, w, tuple(kernels), tuple(expands)), float(total))
        arch = best[0]
        if arch is None:
            raise MissingEntriesError([], self.fill_command())
        return arch, self.predict(arch)  # also raises if the LUT lacks its blocks


def covered_resolutions(lut: LUT, space: SearchSpace) -> tuple[int, ...]:
    """Resolutions for which the LUT holds every block of the space."""
    return tuple(r for r in space.resolutions if not lut.missing([d.key for d in space.all_layers([r])]))
