"""The MobileNetV3 (Once-for-All style) kind of search space, ``"kind": "mbv3"`` (the default).

A :class:`MBv3Space` says which choices exist (depth per stage, kernel and
expand ratio per block, input resolution, width multiplier); an :class:`MBv3Arch`
is one point in it. ``MBv3Arch.layers()`` turns the point into layer descriptors,
which is all the rest of hwnas needs to know about a network.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field, fields
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from hwnas.core import jsonio
from hwnas.spaces.base import (arch_id, SPACES, ArchError, KindParts, SpaceError, as_rng, at_resolutions, check_arch_space,
                               check_fields, checked_resolutions, distinct_samples, read_fields, read_list,
                               read_number, read_space_file, read_string)
from hwnas.spaces.blocks import ACTIVATIONS, LayerDesc, make_divisible

_GENE_BYTES = attrgetter("_gene_bytes")


def progressive_caps(space: "MBv3Space", phase: int, phases: int) -> list[int]:
    """The MobileNetV3 kind's schedule for ``progressive``: in phase ``phase`` of ``phases`` each depth, kernel
    and expand gene of ``n`` choices may go up to index ``ceil((phase+1)(n-1)/phases)`` (choices are listed
    small to large); resolution and width are free throughout."""
    ub = space.gene_upper_bounds()
    return ub[:2] + [math.ceil((phase + 1) * u / phases) for u in ub[2:]]


# -- space ---------------------------------------------------------------------
@dataclass(frozen=True)
class StageSpec:
    width: int
    stride: int
    act: str = "hswish"
    se: bool = False


@SPACES.register("mbv3")
@dataclass(frozen=True)
class MBv3Space:
    """A MobileNetV3 (Once-for-All style) space: stages of MBConv blocks, a depth, kernel and expand choice per
    block, input resolutions and width multipliers."""

    kind = "mbv3"  # a class attribute, not a field: to_dict and the digest stay as they were
    parts = KindParts(latency_predictor="hwnas.latency.predict:MBv3LatencyPredictor",
                      supernet="hwnas.evaluate.mbv3_supernet:MBv3Supernet", gene_ops=True,
                      progressive_caps="hwnas.spaces.mbv3:progressive_caps")
    name: str
    stages: tuple[StageSpec, ...]
    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[float, ...] = (3, 4, 6)
    resolutions: tuple[int, ...] = (160, 176, 192, 208, 224)
    width_mults: tuple[float, ...] = (1.0,)
    in_channels: int = 3
    num_classes: int = 1000
    stem_width: int = 16
    stem_act: str = "hswish"
    first_width: int = 16
    first_act: str = "relu"
    final_expand: int = 960
    head_width: int = 1280
    head_act: str = "hswish"
    description: str = ""

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "MBv3Space":
        if isinstance(data, dict):
            kind = data.get("kind", "mbv3")
            if kind != "mbv3":
                raise SpaceError(f"{source}: a space of kind {kind!r} is not a MobileNetV3 space; read it with "
                                 f"hwnas.spaces.base.space_from_dict / get_space")
            data = {k: v for k, v in data.items() if k != "kind"}

        def convert(name: str, value: Any, where: str) -> Any:
            if name == "stages":
                return tuple(_stage_from_dict(s, f"{source}: stages[{i}]") for i, s in enumerate(read_list(value, where)))
            if name in ("depths", "kernels", "resolutions", "expands", "width_mults"):
                kind = float if name in ("expands", "width_mults") else int
                vals = tuple(read_number(v, kind, f"{where}[{i}]") for i, v in enumerate(read_list(value, where)))
                return tuple(float(v) for v in vals) if name == "width_mults" else vals
            if name in ("name", "description", "stem_act", "first_act", "head_act"):
                return read_string(value, where)
            return read_number(value, int, where)

        return read_fields(cls, data, source, ("name", "stages"), convert)

    def validate(self, source: str = "space") -> None:
        def err(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise err(f"field 'name' must be a non-empty word of letters, digits, '-', '_' or '.', got {self.name!r}")
        if not self.stages:
            raise err("field 'stages' must list at least one stage")
        for fname, lo, hi in (("depths", 1, 64), ("kernels", 1, 31), ("resolutions", 8, 4096)):
            values = getattr(self, fname)
            if not values:
                raise err(f"field {fname!r} must list at least one choice")
            if any(v < lo or v > hi for v in values):
                bad = [v for v in values if v < lo or v > hi]
                raise err(f"field {fname!r} values must be from {lo} to {hi}, got {bad[:5]}"
                          + (f" and {len(bad) - 5:,} more out of range" if len(bad) > 5 else ""))
            if len(set(values)) != len(values):
                raise err(f"field {fname!r} has repeated values: {list(values)}")
        if any(k % 2 == 0 for k in self.kernels):
            raise err(f"field 'kernels' must be odd (same padding), got {list(self.kernels)}")
        for fname in ("expands", "width_mults"):
            values = getattr(self, fname)
            if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
                raise err(f"field {fname!r} must list distinct positive numbers, got {list(values)}")
        if any(e < 1 or e > 64 for e in self.expands):
            raise err(f"field 'expands' values must be from 1 to 64, got {list(self.expands)}")
        if any(w > 16 for w in self.width_mults):
            raise err(f"field 'width_mults' values must be at most 16, got {list(self.width_mults)}")
        for fname in ("in_channels", "num_classes", "stem_width", "first_width", "final_expand", "head_width"):
            if not 1 <= getattr(self, fname) <= 100_000:
                raise err(f"field {fname!r} must be from 1 to 100000, got {getattr(self, fname)}")
        if any(st.width > 100_000 for st in self.stages):
            raise err(f"stage widths must be at most 100000, got {[st.width for st in self.stages]}")
        for fname in ("stem_act", "first_act", "head_act"):
            if getattr(self, fname) not in ACTIVATIONS:
                raise err(f"field {fname!r} = {getattr(self, fname)!r}; choose from {sorted(ACTIVATIONS)}")
        reduction = 2 * _prod(s.stride for s in self.stages)
        if min(self.resolutions) < reduction:
            raise err(f"resolution {min(self.resolutions)} is smaller than the total stride {reduction}")

    @classmethod
    def from_file(cls, path: str | Path) -> "MBv3Space":
        return cls.from_dict(read_space_file(path), source=str(path))

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "MBv3Space":
        """This space at other input resolutions (e.g. ``mbv3`` at 32 px for small images), named
        ``<name>-r<res>[-<res>...]`` so that its LUTs, checkpoints and caches never mix with the original's."""
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "stages":
                v = [dict(width=s.width, stride=s.stride, act=s.act, se=s.se) for s in v]
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d

    @cached_property
    def digest(self) -> str:
        """Short hash of the definition: two spaces with one name but other choices differ here."""
        return hashlib.sha256(jsonio.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    # -- structure -----------------------------------------------------------
    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def channels(self, width_mult: float) -> dict[str, Any]:
        w = (lambda c: make_divisible(c * width_mult)) if width_mult != 1.0 else (lambda c: c)
        return dict(
            stem=w(self.stem_width),
            first=w(self.first_width),
            stages=[w(s.width) for s in self.stages],
            final=w(self.final_expand),
            head=w(self.head_width) if width_mult > 1.0 else self.head_width,
        )

    def layers(self, arch: "MBv3Arch") -> list[LayerDesc]:
        ch = self.channels(arch.width)
        r = arch.resolution
        out = [LayerDesc("conv", self.in_channels, ch["stem"], r, kernel=3, stride=2, act=self.stem_act)]
        r = out[-1].out_res
        out.append(LayerDesc("mbconv", ch["stem"], ch["first"], r, kernel=3, stride=1, mid=ch["stem"], act=self.first_act))
        cin = ch["first"]
        for stage, cout, ks, es in zip(self.stages, ch["stages"], arch.kernels, arch.expands):
            for i, (k, e) in enumerate(zip(ks, es)):
                stride = stage.stride if i == 0 else 1
                d = LayerDesc("mbconv", cin, cout, r, kernel=k, stride=stride, mid=make_divisible(cin * e),
                              se=stage.se, act=stage.act)
                out.append(d)
                cin, r = cout, d.out_res
        out.append(LayerDesc("conv", cin, ch["final"], r, kernel=1, stride=1, act=self.head_act))
        out.append(LayerDesc("head", ch["final"], self.num_classes, r, mid=ch["head"], act=self.head_act))
        return out

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        """Every distinct descriptor any arch of the space can contain (the keys a full LUT needs)."""
        resolutions = checked_resolutions(self, resolutions)
        seen: dict[str, LayerDesc] = {}
        for res in resolutions:
            for wm in self.width_mults:
                for k in self.kernels:
                    for e in self.expands:
                        # a max-depth arch with one (k, e) everywhere holds every block position
                        arch = MBv3Arch(self, res, wm, tuple((k,) * self.max_depth for _ in self.stages),
                                    tuple((e,) * self.max_depth for _ in self.stages))
                        for d in self.layers(arch):
                            seen.setdefault(d.key, d)
        return list(seen.values())

    # -- architectures -------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> "MBv3Arch":
        rng = as_rng(rng)
        depths = [rng.choice(self.depths) for _ in self.stages]
        return MBv3Arch(
            self,
            rng.choice(self.resolutions),
            rng.choice(self.width_mults),
            tuple(tuple(rng.choice(self.kernels) for _ in range(d)) for d in depths),
            tuple(tuple(rng.choice(self.expands) for _ in range(d)) for d in depths),
        )

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["MBv3Arch"]:
        """Up to ``n`` distinct random archs whose ids are not in ``exclude`` (fewer only if the space is
        nearly exhausted: 50 draws per wanted arch at most)."""
        return distinct_samples(self.sample, n, as_rng(rng), exclude)

    def smallest(self) -> "MBv3Arch":
        d = min(self.depths)
        return MBv3Arch(self, min(self.resolutions), min(self.width_mults),
                    tuple((min(self.kernels),) * d for _ in self.stages),
                    tuple((min(self.expands),) * d for _ in self.stages))

    def largest(self) -> "MBv3Arch":
        d = self.max_depth
        return MBv3Arch(self, max(self.resolutions), max(self.width_mults),
                    tuple((max(self.kernels),) * d for _ in self.stages),
                    tuple((max(self.expands),) * d for _ in self.stages))

    def arch_from_dict(self, data: Any, source: str = "arch") -> "MBv3Arch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_arch_space(data, self, {"ops"}, source)
        check_fields(data, {"space", "space_digest", "resolution", "width", "kernels", "expands", "depths", "id"},
                      (), source, ArchError)
        for req in ("resolution", "kernels", "expands"):
            if req not in data:
                raise ArchError(f"{source}: missing required field {req!r}")
        def per_stage(name: str, kind: type) -> tuple:
            stages = data[name]
            if not isinstance(stages, list) or not all(isinstance(b, list) for b in stages):
                raise ArchError(f"{source}: {name!r} must be a list (one per stage) of lists of numbers, "
                                f"got {stages!r:.80}")
            return tuple(tuple(read_number(v, kind, f"{source}: {name}[{i}][{j}]", ArchError) for j, v in enumerate(b))
                         for i, b in enumerate(stages))

        kernels, expands = per_stage("kernels", int), per_stage("expands", float)
        resolution = read_number(data["resolution"], int, f"{source}: resolution", ArchError)
        width = float(read_number(data.get("width", 1.0), float, f"{source}: width", ArchError))
        arch = MBv3Arch(self, resolution, width, kernels, expands)
        depths = data.get("depths", list(arch.depths))
        if not isinstance(depths, list):
            raise ArchError(f"{source}: 'depths' must be a list with one number per stage, got {depths!r:.80}")
        if list(depths) != list(arch.depths):
            raise ArchError(f"{source}: 'depths' {data['depths']} disagrees with the lengths of 'kernels' {list(arch.depths)}")
        arch.validate(source)
        return arch

    def load_arch(self, path: str | Path) -> "MBv3Arch":
        return self.arch_from_dict(jsonio.loads_file(path, ArchError, "architecture file"), source=str(path))

    # -- integer genes (for generic optimisers such as pymoo) ----------------
    def gene_upper_bounds(self) -> list[int]:
        """Inclusive upper bound of each gene; lower bounds are 0. See :meth:`MBv3Arch.genes`."""
        n, d = len(self.stages), self.max_depth
        return ([len(self.resolutions) - 1, len(self.width_mults) - 1] + [len(self.depths) - 1] * n
                + [len(self.kernels) - 1, len(self.expands) - 1] * (n * d))

    def from_genes(self, genes: Iterable[int]) -> "MBv3Arch":
        g = [int(v) for v in genes]
        n, d = len(self.stages), self.max_depth
        depths = [self.depths[i] for i in g[2:2 + n]]
        blocks = g[2 + n:]
        kernels = tuple(tuple(self.kernels[blocks[2 * (s * d + i)]] for i in range(depths[s])) for s in range(n))
        expands = tuple(tuple(self.expands[blocks[2 * (s * d + i) + 1]] for i in range(depths[s])) for s in range(n))
        return MBv3Arch(self, self.resolutions[g[0]], self.width_mults[g[1]], kernels, expands)

    def gene_matrix(self, archs: Sequence["MBv3Arch"], compact: bool = False) -> np.ndarray:
        """The genes of many archs, [N, genes] intp (``compact``: the smallest integer type that holds them,
        read-only): their cached bytes joined, one numpy conversion."""
        raw = np.frombuffer(b"".join(map(_GENE_BYTES, archs)), self._gene_dtype)
        raw = raw.reshape(len(archs), len(self.gene_upper_bounds()))  # ValueError for archs of another shape
        return raw if compact else raw.astype(np.intp)

    # -- gene matrices: the search's fast path (one row per arch, numpy RNG) --
    @cached_property
    def _gene_dtype(self) -> type:
        return np.uint8 if max(self.gene_upper_bounds()) < 256 else np.int32

    @cached_property
    def _gene_lookup(self) -> tuple[dict, ...]:
        """choice value -> index, for resolution, width, depth, kernel, expand (``tuple.index`` as a dict)."""
        return tuple({v: i for i, v in reversed(list(enumerate(vals)))} for vals in
                     (self.resolutions, self.width_mults, self.depths, self.kernels, self.expands))

    def canonical_genes(self, G: np.ndarray) -> np.ndarray:
        """``G`` [N, genes] with the block genes past each stage's depth set to 0, as :meth:`MBv3Arch.genes`
        has them: then one arch is one row, and rows compare (and dedupe) as archs do."""
        G = np.array(G, dtype=np.intp, copy=True).reshape(-1, len(self.gene_upper_bounds()))
        S, D = len(self.stages), self.max_depth
        depths = np.asarray(self.depths)[G[:, 2:2 + S]]
        blocks = G[:, 2 + S:].reshape(len(G), S, D, 2)
        blocks[np.arange(D)[None, None, :] >= depths[:, :, None]] = 0
        return G

    @cached_property
    def _gene_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Choice ``g`` of gene column ``c`` (resolution, width, depths) is ``values[g + offset[c]]``; its JSON
        text, as :meth:`MBv3Arch.to_json` writes it, is ``texts[g + offset[c]]`` (object arrays: one gather maps
        a matrix)."""
        groups = (self.resolutions, self.width_mults, self.depths)
        starts = np.cumsum([0] + [len(g) for g in groups])
        offset = starts[[0, 1] + [2] * len(self.stages)]
        values = np.empty(starts[-1], dtype=object)
        values[:] = [v for g in groups for v in g]
        texts = np.empty(starts[-1], dtype=object)
        texts[:] = ([jsonio.dumps(v) for v in self.resolutions] + [jsonio.dumps(float(v)) for v in self.width_mults]
                    + [str(v) for v in self.depths])
        return values, texts, offset

    @cached_property
    def _stage_memo(self) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
        """For kernels and for expands: stage code (see :meth:`_stage_codes`) -> the stage's tuple of values,
        and -> their JSON text. Filled as codes turn up; archs share the tuples."""
        return ({}, {}), ({}, {})

    def _stage_codes(self, G: np.ndarray) -> tuple[list[list[int]], list[list[int]]]:
        """Per row and stage of canonical ``G``, one integer naming the stage's kernels (and one its expands):
        the block genes as base-``choices`` digits, then the depth's index. The memo of each code is filled."""
        S, D, o = len(self.stages), self.max_depth, 2 + len(self.stages)
        out = []
        for j, choices in enumerate((self.kernels, self.expands)):
            B = len(choices)
            kind = object if len(self.depths) * B ** D >= 2 ** 62 else np.int64  # Python ints past int64
            powers = np.array([B ** i for i in range(D)] + [B ** D], dtype=kind)
            digits = np.concatenate([G[:, o + j::2].reshape(len(G), S, D), G[:, 2:o, None]], axis=2)
            codes = (digits.astype(kind) * powers).sum(-1).tolist()
            values, texts = self._stage_memo[j]
            if len(values) == sum(B ** d for d in self.depths):
                out.append(codes)  # every stage there can be is known (mbv3: 117 each, after a few generations)
                continue
            for c in {c for row in codes for c in row} - values.keys():
                depth_index, rest = divmod(c, B ** D)
                gs = [rest // B ** i % B for i in range(self.depths[depth_index])]
                values[c] = tuple(choices[g] for g in gs)
                texts[c] = ", ".join(jsonio.dumps(choices[g]) for g in gs)
            out.append(codes)
        return out[0], out[1]

    def archs_from_genes(self, G: np.ndarray, ids: Sequence[str] | None = None) -> list["MBv3Arch"]:
        """``[self.from_genes(g) for g in G]``, faster, with each arch's gene row (and ``ids``, when given:
        :meth:`gene_ids` of the same rows) already cached. Rows must lie within :meth:`gene_upper_bounds`."""
        G = self.canonical_genes(G)
        values, _, offset = self._gene_tables
        raw = G.astype(self._gene_dtype)
        width, data = raw.shape[1] * raw.itemsize, raw.tobytes()
        kc, ec = self._stage_codes(G)
        (kv, _), (ev, _) = self._stage_memo
        out = []
        for n, ((r, w), ks, es) in enumerate(zip(values[G[:, :2] + offset[:2]].tolist(), kc, ec)):
            a = MBv3Arch(self, r, w, tuple(map(kv.__getitem__, ks)), tuple(map(ev.__getitem__, es)))
            a.__dict__["_gene_bytes"] = data[n * width:(n + 1) * width]  # what the cached property would compute
            if ids is not None:
                a.__dict__["id"] = ids[n]
            out.append(a)
        return out

    def gene_ids(self, G: np.ndarray) -> list[str]:
        """``[self.from_genes(g).id for g in G]`` without making the archs: the same canonical JSON, written
        from per-choice texts (a test holds the two equal). Rows must lie within :meth:`gene_upper_bounds`."""
        G = self.canonical_genes(G)
        _, texts, offset = self._gene_tables
        o = 2 + len(self.stages)
        kc, ec = self._stage_codes(G)
        (_, kt), (_, et) = self._stage_memo
        head, name = f'{self.digest}:{{"depths": [', jsonio.dumps(self.name)
        sha, out = hashlib.sha256, []
        for t, ks, es in zip(texts[G[:, :o] + offset].tolist(), kc, ec):
            text = (f'{head}{", ".join(t[2:])}], "expands": [[{"], [".join(map(et.__getitem__, es))}]], '
                    f'"kernels": [[{"], [".join(map(kt.__getitem__, ks))}]], "resolution": {t[0]}, '
                    f'"space": {name}, "width": {t[1]}}}')
            out.append(sha(text.encode()).hexdigest()[:12])
        return out

    def crossover_genes(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """:meth:`MBv3Arch.crossover` of rows ``A[i]`` and ``B[i]`` for every ``i`` at once: resolution, width and
        each stage's depth from either parent; each block (kernel and expand together) from either parent
        when both have it, else from the one that has it."""
        A, B = np.asarray(A, np.intp), np.asarray(B, np.intp)
        n, S, D = len(A), len(self.stages), self.max_depth
        C = np.where(rng.random(A.shape) < 0.5, A, B)
        depths = np.asarray(self.depths)
        has_a = np.arange(D) < depths[A[:, 2:2 + S]][..., None]  # [N, S, D]
        has_b = np.arange(D) < depths[B[:, 2:2 + S]][..., None]
        from_a = np.where(has_a & has_b, rng.random((n, S, D)) < 0.5, has_a)
        C[:, 2 + S:] = np.where(from_a[..., None], A[:, 2 + S:].reshape(n, S, D, 2),
                                B[:, 2 + S:].reshape(n, S, D, 2)).reshape(n, -1)
        return self.canonical_genes(C)

    def mutate_genes(self, G: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
        """:meth:`MBv3Arch.mutate` of every row at once: each gene drawn again with probability ``prob``; the
        blocks a deeper stage gains are drawn at random."""
        G = np.array(G, dtype=np.intp, copy=True)
        n, S, D = len(G), len(self.stages), self.max_depth
        ub = np.asarray(self.gene_upper_bounds())
        depths = np.asarray(self.depths)
        before = depths[G[:, 2:2 + S]]
        rows, cols = np.nonzero(rng.random(G.shape) < prob)
        G[rows, cols] = rng.integers(0, ub[cols] + 1)
        gained = (np.arange(D) >= before[..., None]) & (np.arange(D) < depths[G[:, 2:2 + S]][..., None])
        rows, cols = np.nonzero(np.repeat(gained.reshape(n, S * D), 2, axis=1))  # kernel and expand of a block
        G[rows, 2 + S + cols] = rng.integers(0, ub[2 + S + cols] + 1)
        return self.canonical_genes(G)

    def encode_many(self, archs: Sequence["MBv3Arch"]) -> np.ndarray:
        """One-hot encodings of many archs, [N, encoding_size] float32, built from their genes with numpy.

        Layout per stage and block slot: kernel one-hot then expand one-hot (zeros past the stage's
        depth), then resolution one-hot and width one-hot.
        """
        G = self.gene_matrix(archs)
        n, S, D, K, E = len(archs), len(self.stages), self.max_depth, len(self.kernels), len(self.expands)
        depths = np.asarray(self.depths)[G[:, 2:2 + S]]
        active = np.arange(D)[None, None, :] < depths[:, :, None]
        kb, eb = G[:, 2 + S::2].reshape(n, S, D), G[:, 3 + S::2].reshape(n, S, D)
        blocks = np.zeros((n, S, D, K + E), np.float32)
        ni, si, di = np.nonzero(active)
        blocks[ni, si, di, kb[active]] = 1.0
        blocks[ni, si, di, K + eb[active]] = 1.0
        tail = np.zeros((n, len(self.resolutions) + len(self.width_mults)), np.float32)
        tail[np.arange(n), G[:, 0]] = 1.0
        tail[np.arange(n), len(self.resolutions) + G[:, 1]] = 1.0
        return np.concatenate([blocks.reshape(n, -1), tail], axis=1)

    @property
    def encoding_size(self) -> int:
        return (len(self.stages) * self.max_depth * (len(self.kernels) + len(self.expands))
                + len(self.resolutions) + len(self.width_mults))


# -- arch ----------------------------------------------------------------------
@dataclass(frozen=True)
class MBv3Arch:
    """One network of a space. ``kernels[s]`` and ``expands[s]`` list the active blocks of stage ``s``."""

    space: MBv3Space = field(compare=False, repr=False)
    resolution: int
    width: float
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.width, float):  # 1 and 1.0 must give one id
            object.__setattr__(self, "width", float(self.width))

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.kernels)

    def scaled(self, depth: float, width: float, resolution: float) -> "MBv3Arch":
        """Compound scaling (EfficientNet): each stage's depth x ``depth`` (added blocks repeat the stage's last
        block's kernel and expansion; removed ones are its last), the width multiplier x ``width`` and the
        resolution x ``resolution``, each snapped to the nearest value the space allows (ties upward)."""
        sp = self.space

        def nearest(choices: Sequence[float], target: float) -> Any:
            return min(choices, key=lambda v: (abs(v - target), -v))

        kernels, expands = [], []
        for ks, es in zip(self.kernels, self.expands):
            d = nearest(sp.depths, len(ks) * depth)
            kernels.append(tuple(ks[:d]) + (ks[-1],) * (d - len(ks)))
            expands.append(tuple(es[:d]) + (es[-1],) * (d - len(es)))
        return MBv3Arch(sp, nearest(sp.resolutions, self.resolution * resolution),
                        nearest(sp.width_mults, self.width * width), tuple(kernels), tuple(expands))

    def validate(self, source: str = "arch") -> None:
        sp = self.space

        def err(msg: str) -> ArchError:
            return ArchError(f"{source}: {msg}")

        if self.resolution not in sp.resolutions:
            raise err(f"resolution = {self.resolution} is not allowed; choose from {list(sp.resolutions)}")
        if self.width not in sp.width_mults:
            raise err(f"width = {self.width} is not allowed; choose from {list(sp.width_mults)}")
        n = len(sp.stages)
        if len(self.kernels) != n or len(self.expands) != n:
            raise err(f"'kernels' and 'expands' need one list per stage ({n} stages), "
                      f"got {len(self.kernels)} and {len(self.expands)}")
        for s, (ks, es) in enumerate(zip(self.kernels, self.expands)):
            if len(ks) != len(es):
                raise err(f"stage {s}: {len(ks)} kernels but {len(es)} expands; one of each per block")
            if len(ks) not in sp.depths:
                raise err(f"stage {s}: depth = {len(ks)} is not allowed; choose from {list(sp.depths)}")
            for b, (k, e) in enumerate(zip(ks, es)):
                if k not in sp.kernels:
                    raise err(f"kernels[{s}][{b}] = {k} is not allowed; choose from {list(sp.kernels)}")
                if e not in sp.expands:
                    raise err(f"expands[{s}][{b}] = {e} is not allowed; choose from {list(sp.expands)}")

    def layers(self) -> list[LayerDesc]:
        return self.space.layers(self)

    @property
    def summary(self) -> str:
        """What tells archs of this kind apart at a glance (logs, tables): the depths per stage."""
        return f"depths {list(self.depths)}"

    def describe(self) -> str:
        """The report's line for this arch (the lists as its JSON holds them)."""
        d = self.to_dict()
        return (f"resolution {d['resolution']}, width {d['width']}, depths {[len(k) for k in d['kernels']]}, "
                f"kernels {d['kernels']}, expands {d['expands']}")

    def report_fields(self) -> dict[str, Any]:
        """What ``hwnas predict --json`` adds for an arch of this kind beside its id and summary."""
        return {"depths": list(self.depths)}

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.name,
            "resolution": self.resolution,
            "width": float(self.width),
            "depths": list(self.depths),
            "kernels": [list(k) for k in self.kernels],
            "expands": [list(es) for es in self.expands],  # already canonical: values come from the space
        }

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), sort_keys=True)

    @cached_property
    def id(self) -> str:
        """Stable short id: hash of the canonical JSON and the space's digest."""
        return arch_id(self)

    # -- variation -----------------------------------------------------------
    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "MBv3Arch":
        """Resample each gene with probability ``prob``; a changed depth adds sampled blocks or drops the last."""
        rng, sp = as_rng(rng), self.space
        res = rng.choice(sp.resolutions) if rng.random() < prob else self.resolution
        width = rng.choice(sp.width_mults) if rng.random() < prob else self.width
        kernels, expands = [], []
        for ks, es in zip(self.kernels, self.expands):
            ks, es = list(ks), list(es)
            if rng.random() < prob:
                d = rng.choice(sp.depths)
                while len(ks) < d:
                    ks.append(rng.choice(sp.kernels))
                    es.append(rng.choice(sp.expands))
                del ks[d:], es[d:]
            ks = [rng.choice(sp.kernels) if rng.random() < prob else k for k in ks]
            es = [rng.choice(sp.expands) if rng.random() < prob else e for e in es]
            kernels.append(tuple(ks))
            expands.append(tuple(es))
        return MBv3Arch(sp, res, width, tuple(kernels), tuple(expands))

    def crossover(self, other: "MBv3Arch", rng: random.Random | int | None = None) -> "MBv3Arch":
        """Uniform crossover: each gene from either parent; a block that only one parent has comes from it."""
        rng = as_rng(rng)
        pick = lambda a, b: a if rng.random() < 0.5 else b  # noqa: E731
        kernels, expands = [], []
        for ka, ea, kb, eb in zip(self.kernels, self.expands, other.kernels, other.expands):
            d = pick(len(ka), len(kb))
            ks, es = [], []
            for i in range(d):
                src = pick(0, 1) if i < len(ka) and i < len(kb) else (0 if i < len(ka) else 1)
                ks.append((ka, kb)[src][i])
                es.append((ea, eb)[src][i])
            kernels.append(tuple(ks))
            expands.append(tuple(es))
        return MBv3Arch(self.space, pick(self.resolution, other.resolution), pick(self.width, other.width),
                    tuple(kernels), tuple(expands))

    def genes(self) -> list[int]:
        """Fixed-length integer vector (choice indices; blocks past a stage's depth are 0)."""
        return list(self._genes)

    @cached_property
    def _genes(self) -> tuple[int, ...]:
        sp = self.space
        res, width, depth, kernel, expand = sp._gene_lookup
        try:
            g = [res[self.resolution], width[self.width]]
            g += [depth[len(ks)] for ks in self.kernels]
            for ks, es in zip(self.kernels, self.expands):
                for i in range(sp.max_depth):
                    g += [kernel[ks[i]], expand[es[i]]] if i < len(ks) else [0, 0]
        except (KeyError, TypeError) as e:  # as tuple.index: a choice the space does not have
            raise ValueError(f"{e!s:.60} is not a choice of space {sp.name!r}") from None
        return tuple(g)

    @cached_property
    def _gene_bytes(self) -> bytes:
        """The genes as the bytes of one row of :meth:`MBv3Space.gene_matrix`."""
        dtype = self.space._gene_dtype
        return bytes(self._genes) if dtype is np.uint8 else np.asarray(self._genes, dtype).tobytes()

    def encode(self) -> list[float]:
        """Fixed-length one-hot vector (inactive blocks are all zero) for accuracy/latency predictors."""
        return self.space.encode_many([self])[0].tolist()



def _prod(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _stage_from_dict(data: Any, where: str) -> StageSpec:
    if not isinstance(data, dict):
        raise SpaceError(f"{where} must be an object with width, stride, act, se; got {data!r}")
    check_fields(data, {"width", "stride", "act", "se"}, ("width", "stride"), where, SpaceError)
    width = read_number(data["width"], int, f"{where}.width")
    stride = read_number(data["stride"], int, f"{where}.stride")
    act = data.get("act", "hswish")
    se = data.get("se", False)
    if width < 1:
        raise SpaceError(f"{where}.width must be >= 1, got {width}")
    if stride not in (1, 2):
        raise SpaceError(f"{where}.stride = {stride} is not allowed; choose from [1, 2]")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise SpaceError(f"{where}.act = {act!r} is not allowed; choose from {sorted(ACTIVATIONS)}")
    if not isinstance(se, bool):
        raise SpaceError(f"{where}.se must be true or false, got {se!r}")
    return StageSpec(width, stride, act, se)


