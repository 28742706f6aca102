"""The DARTS cell space kind (Liu et al., ICLR 2019): a normal and a reduction cell, stacked.

A cell has two input nodes (the outputs of the two cells before it, preprocessed to ``C`` channels: a 1x1
ReLU-conv-BN, or DARTS's factorized reduction after a reduction cell) and ``nodes`` intermediate nodes;
each intermediate node sums two operations, each on an earlier node (two different ones), chosen from
``sep_conv_3x3/5x5``, ``dil_conv_3x3/5x5``, ``max_pool_3x3``, ``avg_pool_3x3``, ``skip_connect`` (a
genotype never holds ``none``: that is the supernet's relaxation's, ``hwnas.evaluate.darts_supernet``).
The cell's output concatenates its intermediate nodes (``nodes`` x ``C`` channels). The network: a 3x3
conv-BN stem to ``stem_multiplier`` x ``C``, ``cells`` cells with reduction cells (stride 2 on the input
nodes, ``C`` doubled) at 1/3 and 2/3 of the depth, global pooling and a linear classifier. Space files say
``"kind": "darts"``; an arch is a genotype, written as DARTS writes it (``"normal": [["sep_conv_3x3", 0],
["sep_conv_3x3", 1], ...]``, two ``[op, input]`` pairs per node, inputs 0 and 1 the cell's inputs) or read
from DARTS's own ``Genotype(normal=[...], reduce=[...])`` text.

Latency: the sum of the blocks' LUT entries (stem, per cell its preprocessing, each operation at its
stride, one ``add`` per node, the ``concat``; the head), calibrated; ``skip_connect`` is free except at
stride 2 (a factorized reduction).
"""
from __future__ import annotations

import ast
import hashlib
import itertools
import random
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.core import jsonio
from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.base import (arch_id, KindParts, SPACES, ArchError, SpaceError, check_fields, read_number, as_rng, read_string,
                                at_resolutions, check_arch_space, checked_resolutions, distinct_samples, read_fields)

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5")
CELL_TYPES = ("normal", "reduce")


@SPACES.register("darts")
@dataclass(frozen=True)
class DartsSpace:
    """A DARTS space: genotypes of a normal and a reduction cell over ``ops``, the network's shape fixed."""

    name: str
    nodes: int = 4
    cells: int = 8
    channels: int = 16               # C of the first cells (doubled at each reduction)
    stem_multiplier: int = 3
    ops: tuple[str, ...] = OPS
    resolutions: tuple[int, ...] = (32,)
    in_channels: int = 3
    num_classes: int = 10
    description: str = ""
    kind: str = "darts"
    parts = KindParts(latency_predictor="hwnas.latency.darts_predict:DartsLatencyPredictor",
                      supernet="hwnas.evaluate.darts_supernet:DartsSupernet")

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "DartsSpace":
        def convert(name: str, value: Any, where: str) -> Any:
            if name in ("name", "description", "kind"):
                return read_string(value, where)
            if name == "ops":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SpaceError(f"{where} must be a list of operation names from {list(OPS)}")
                return tuple(value)
            if name == "resolutions":
                if not isinstance(value, list):
                    raise SpaceError(f"{where} must be a list of whole numbers, got {value!r:.40}")
                return tuple(read_number(v, int, f"{where}[{i}]") for i, v in enumerate(value))
            return read_number(value, int, where)

        return read_fields(cls, data, source, ("name", "kind"), convert)

    def validate(self, source: str = "space") -> None:
        def err(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if self.kind != "darts":
            raise err(f"field 'kind' must be 'darts' for a DARTS space, got {self.kind!r}")
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise err(f"field 'name' must be a non-empty word of letters, digits, '-', '_' or '.', got {self.name!r}")
        if not 1 <= self.nodes <= 8:
            raise err(f"field 'nodes' must be 1..8, got {self.nodes}")
        if not 3 <= self.cells <= 40:
            raise err(f"field 'cells' must be 3..40 (reductions at 1/3 and 2/3 of the depth), got {self.cells}")
        if not 1 <= self.channels <= 1024 or not 1 <= self.stem_multiplier <= 8:
            raise err("field 'channels' must be 1..1024 and 'stem_multiplier' 1..8")
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops or len(set(self.ops)) != len(self.ops):
            raise err(f"field 'ops' must list distinct operations from {list(OPS)} ('none' is the relaxation's, "
                      f"not a genotype's), got {list(self.ops)}")
        if not self.resolutions or any(r < 8 or r > 512 for r in self.resolutions):
            raise err(f"field 'resolutions' must list sizes 8..512, got {list(self.resolutions)}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise err("in_channels must be >= 1 and num_classes >= 2")

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "DartsSpace":
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(jsonio.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    # -- the network's shape: fixed by the space, whatever the genotype ---------------------------
    @property
    def reductions(self) -> tuple[int, ...]:
        return (self.cells // 3, 2 * self.cells // 3)

    def positions(self, resolution: int) -> list["CellPosition"]:
        """Every cell's place: its type, channels, input channels and resolutions (DARTS's NetworkCIFAR)."""
        c = self.channels
        c_pp = c_p = self.stem_multiplier * c
        r_pp = r_p = resolution
        out = []
        reduction_prev = False
        for i in range(self.cells):
            reduction = i in self.reductions
            if reduction:
                c *= 2
            r_out = -(-r_p // 2) if reduction else r_p
            out.append(CellPosition(i, "reduce" if reduction else "normal", c, c_pp, c_p, r_pp, r_p, r_out,
                                    reduction_prev))
            c_pp, c_p, r_pp, r_p, reduction_prev = c_p, self.nodes * c, r_p, r_out, reduction
        return out

    def pairs(self, node: int) -> list[tuple[int, int]]:
        """The input pairs node ``node`` (0-based) may take: two different earlier nodes of the cell."""
        return list(itertools.combinations(range(node + 2), 2))

    # -- latency keys ----------------------------------------------------------
    def layers(self, arch: "DartsArch") -> list[LayerDesc]:
        return arch.layers()

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        """Every distinct block any genotype can run at ``resolutions``: per cell place, its fixed blocks and
        each operation on a cell input and on an intermediate node."""
        seen: dict[str, LayerDesc] = {}
        for res in checked_resolutions(self, resolutions):
            for d in (self._stem(res), self._head(res)):
                seen.setdefault(d.key, d)
            for pos in self.positions(res):
                for d in pos.fixed_layers(self):
                    seen.setdefault(d.key, d)
                for op in self.ops:
                    for on_input in (True, False):
                        d = pos.op_layer(op, on_input)
                        if d is not None:
                            seen.setdefault(d.key, d)
        return list(seen.values())

    def _stem(self, res: int) -> LayerDesc:
        return LayerDesc("conv", self.in_channels, self.stem_multiplier * self.channels, res, kernel=3, act="none")

    def _head(self, res: int) -> LayerDesc:
        last = self.positions(res)[-1]
        return LayerDesc("gaphead", self.nodes * last.c, self.num_classes, last.r_out)

    def size(self) -> int:
        per_cell = 1
        for i in range(self.nodes):
            per_cell *= len(self.pairs(i)) * len(self.ops) ** 2
        return len(self.resolutions) * per_cell**2

    # -- architectures -------------------------------------------------------
    def _random_cell(self, rng: random.Random) -> tuple[tuple[str, int], ...]:
        out: list[tuple[str, int]] = []
        for i in range(self.nodes):
            a, b = rng.choice(self.pairs(i))
            out += [(rng.choice(self.ops), a), (rng.choice(self.ops), b)]
        return tuple(out)

    def sample(self, rng: random.Random | int | None = None) -> "DartsArch":
        rng = as_rng(rng)
        return DartsArch(self, rng.choice(self.resolutions), self._random_cell(rng), self._random_cell(rng))

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["DartsArch"]:
        return distinct_samples(self.sample, n, as_rng(rng), exclude)

    def _uniform(self, op: str, res: int) -> "DartsArch":
        cell = tuple((op, j) for i in range(self.nodes) for j in (i, i + 1))
        return DartsArch(self, res, cell, cell)

    def largest(self) -> "DartsArch":
        big = next((o for o in ("sep_conv_5x5", "sep_conv_3x3", "dil_conv_5x5") if o in self.ops), self.ops[-1])
        return self._uniform(big, max(self.resolutions))

    def smallest(self) -> "DartsArch":
        small = next((o for o in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") if o in self.ops), self.ops[0])
        return self._uniform(small, min(self.resolutions))

    def arch_from_dict(self, data: Any, source: str = "arch") -> "DartsArch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_arch_space(data, self, {"ops", "kernels", "expands", "depths", "width", "stages"}, source)
        check_fields(data, {"space", "resolution", "normal", "reduce"}, ("resolution", "normal", "reduce"), source,
                      ArchError)
        cells = []
        for name in CELL_TYPES:
            raw = data[name]
            if not isinstance(raw, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
                raise ArchError(f"{source}: field {name!r} must list [op, input] pairs, two per node")
            cells.append(tuple((str(op), read_number(j, int, f"{source}: {name} input", ArchError)) for op, j in raw))
        arch = DartsArch(self, read_number(data["resolution"], int, f"{source}: field 'resolution'", ArchError), *cells)
        arch.validate(source)
        return arch

    def arch_from_text(self, text: str, source: str = "arch") -> "DartsArch":
        """A genotype as DARTS prints it: ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6),
        reduce=[...], reduce_concat=range(2, 6))`` (the concat fields, when given, must be all intermediate
        nodes), at the space's smallest resolution."""
        body = text.strip()
        if body.startswith("Genotype(") and body.endswith(")"):
            body = body[len("Genotype("):-1]
        try:
            call = ast.parse(f"f({body})", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            kw = {k.arg: k.value for k in call.keywords}
            cells = {name: tuple((str(op), int(j)) for op, j in ast.literal_eval(kw[name])) for name in CELL_TYPES}
            for name in CELL_TYPES:
                if len(cells[name]) != 2 * self.nodes:  # said before the concat, which follows from the node count
                    raise ArchError(f"{source}: {name} lists {len(cells[name])} (op, input) pairs, a cell of "
                                    f"{len(cells[name]) / 2:g} nodes; this space's cells have {self.nodes} nodes "
                                    f"({2 * self.nodes} pairs): give a genotype searched in this space, or a space "
                                    f"file with \"nodes\": {len(cells[name]) / 2:g}")
                concat = kw.get(f"{name}_concat")
                if concat is not None:
                    want = f"range(2, {self.nodes + 2})"
                    if ast.unparse(concat).replace(" ", "") not in (want.replace(" ", ""),
                                                                    str(list(range(2, self.nodes + 2))).replace(" ", "")):
                        raise ArchError(f"{source}: {name}_concat must be {want} (every intermediate node)")
        except ArchError:
            raise
        except Exception:
            raise ArchError(f"{source}: not a DARTS genotype (Genotype(normal=[(op, input), ...], reduce=[...])): "
                            f"{text.strip()[:80]!r}") from None
        arch = DartsArch(self, min(self.resolutions), cells["normal"], cells["reduce"])
        arch.validate(source)
        return arch

    def load_arch(self, path: str | Path) -> "DartsArch":
        return self.arch_from_dict(jsonio.loads_file(path, ArchError, "architecture file"), source=str(path))

    def gene_upper_bounds(self) -> list[int]:
        """Per cell type and node: its input pair, the op on the lower input, the op on the higher."""
        per_node = [[len(self.pairs(i)) - 1, len(self.ops) - 1, len(self.ops) - 1] for i in range(self.nodes)]
        return [len(self.resolutions) - 1] + [u for _ in CELL_TYPES for node in per_node for u in node]

    def from_genes(self, genes: Iterable[int]) -> "DartsArch":
        g = list(genes)
        cells, k = [], 1
        for _ in CELL_TYPES:
            cell: list[tuple[str, int]] = []
            for i in range(self.nodes):
                a, b = self.pairs(i)[g[k]]
                cell += [(self.ops[g[k + 1]], a), (self.ops[g[k + 2]], b)]
                k += 3
            cells.append(tuple(cell))
        return DartsArch(self, self.resolutions[g[0]], *cells)

    def encode_many(self, archs: Sequence["DartsArch"]) -> np.ndarray:
        sizes = [u + 1 for u in self.gene_upper_bounds()]
        offsets = np.cumsum([0] + sizes[:-1])
        out = np.zeros((len(archs), sum(sizes)))
        for n, a in enumerate(archs):
            out[n, offsets + np.asarray(a.genes())] = 1.0
        return out

    @property
    def encoding_size(self) -> int:
        return sum(u + 1 for u in self.gene_upper_bounds())


@dataclass(frozen=True)
class CellPosition:
    """One cell's place in the network (fixed by the space): what its blocks' keys depend on."""

    index: int
    type: str
    c: int
    c_pp: int          # channels of input 0 (two cells back) and 1 (the cell before)
    c_p: int
    r_pp: int
    r_p: int
    r_out: int
    reduction_prev: bool

    def fixed_layers(self, space: DartsSpace) -> list[LayerDesc]:
        pre0 = (LayerDesc("factreduce", self.c_pp, self.c, self.r_pp, stride=2) if self.reduction_prev else
                LayerDesc("rcb", self.c_pp, self.c, self.r_pp, kernel=1))
        pre1 = LayerDesc("rcb", self.c_p, self.c, self.r_p, kernel=1)
        adds = [LayerDesc("add", self.c, self.c, self.r_out, act="none")] * space.nodes
        return [pre0, pre1, *adds, LayerDesc("concat", space.nodes * self.c, space.nodes * self.c, self.r_out,
                                             act="none")]

    def op_layer(self, op: str, on_input: bool) -> LayerDesc | None:
        """The block of ``op`` on a cell input (stride 2 in a reduction cell) or on an intermediate node;
        None when it costs nothing (an identity skip)."""
        stride = 2 if on_input and self.type == "reduce" else 1
        res = self.r_p if on_input else self.r_out
        c = self.c
        if op == "skip_connect":
            return LayerDesc("factreduce", c, c, res, stride=2) if stride == 2 else None
        if op in ("max_pool_3x3", "avg_pool_3x3"):
            return LayerDesc("maxpool" if op.startswith("max") else "avgpool", c, c, res, kernel=3, stride=stride,
                             act="none")
        kind, k = op.rsplit("_", 1)
        return LayerDesc("sepconv" if kind == "sep_conv" else "dilconv", c, c, res, kernel=int(k[0]), stride=stride)


@dataclass(frozen=True)
class DartsArch:
    """A genotype: per cell type, two ``(op, input)`` pairs per intermediate node (inputs 0, 1: the cell's
    inputs; 2 + i: intermediate node i), the pair sorted by input (a sum does not care)."""

    space: DartsSpace = field(compare=False, repr=False)
    resolution: int
    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        for name in CELL_TYPES:  # canonical: each node's two pairs in input order
            cell = getattr(self, name)
            pairs = [tuple(sorted(cell[2 * i:2 * i + 2], key=lambda p: (p[1], p[0]))) for i in range(len(cell) // 2)]
            object.__setattr__(self, name, tuple(p for node in pairs for p in node) + tuple(cell[2 * len(pairs):]))

    def validate(self, source: str = "arch") -> None:
        sp = self.space
        if self.resolution not in sp.resolutions:
            raise ArchError(f"{source}: resolution {self.resolution} is not allowed; choose from {list(sp.resolutions)}")
        for name in CELL_TYPES:
            cell = getattr(self, name)
            if len(cell) != 2 * sp.nodes:
                raise ArchError(f"{source}: {name} lists {len(cell)} [op, input] pairs; {sp.nodes} nodes take "
                                f"{2 * sp.nodes}")
            for i in range(sp.nodes):
                (op_a, a), (op_b, b) = cell[2 * i], cell[2 * i + 1]
                for op in (op_a, op_b):
                    if op not in sp.ops:
                        raise ArchError(f"{source}: {name} node {i}: op {op!r} is not allowed; choose from "
                                        f"{list(sp.ops)}")
                if not (0 <= a < i + 2 and 0 <= b < i + 2) or a == b:
                    raise ArchError(f"{source}: {name} node {i} takes inputs {a} and {b}; it takes two different "
                                    f"earlier nodes of 0..{i + 1}")

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "resolution": self.resolution,
                "normal": [list(p) for p in self.normal], "reduce": [list(p) for p in self.reduce]}

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), sort_keys=True)

    @property
    def genotype(self) -> str:
        """DARTS's own text form of this genotype."""
        concat = f"range(2, {self.space.nodes + 2})"
        return (f"Genotype(normal={list(self.normal)}, normal_concat={concat}, reduce={list(self.reduce)}, "
                f"reduce_concat={concat})")

    @cached_property
    def id(self) -> str:
        return arch_id(self)

    @property
    def summary(self) -> str:
        short = lambda cell: ",".join(f"{op.replace('_conv_', '').replace('_pool_3x3', 'pool').replace('skip_connect', 'skip')}"  # noqa: E731
                                      f"@{j}" for op, j in cell)
        return f"normal {short(self.normal)} reduce {short(self.reduce)}"

    def describe(self) -> str:
        return f"resolution {self.resolution}, {self.genotype}"

    def report_fields(self) -> dict[str, Any]:
        return {"genotype": self.genotype}

    def layers(self) -> list[LayerDesc]:
        sp = self.space
        out = [sp._stem(self.resolution)]
        for pos in sp.positions(self.resolution):
            cell = getattr(self, pos.type)
            out += pos.fixed_layers(sp)
            out += [d for op, j in cell if (d := pos.op_layer(op, j < 2)) is not None]
        return out + [sp._head(self.resolution)]

    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "DartsArch":
        """Each gene (a node's input pair, each of its ops) redrawn with probability ``prob``: rewiring and
        op changes; every result is a valid genotype."""
        rng, sp = as_rng(rng), self.space
        g = [rng.randint(0, u) if rng.random() < prob else v for v, u in zip(self.genes(), sp.gene_upper_bounds())]
        return sp.from_genes(g)

    def crossover(self, other: "DartsArch", rng: random.Random | int | None = None) -> "DartsArch":
        """Node by node from either parent (a node's pair and ops stay together)."""
        rng = as_rng(rng)
        pick = lambda a, b: a if rng.random() < 0.5 else b  # noqa: E731
        cells = []
        for name in CELL_TYPES:
            mine, theirs = getattr(self, name), getattr(other, name)
            cells.append(tuple(p for i in range(self.space.nodes)
                               for p in pick(mine[2 * i:2 * i + 2], theirs[2 * i:2 * i + 2])))
        return DartsArch(self.space, pick(self.resolution, other.resolution), *cells)

    def genes(self) -> list[int]:
        sp = self.space
        g = [sp.resolutions.index(self.resolution)]
        for name in CELL_TYPES:
            cell = getattr(self, name)
            for i in range(sp.nodes):
                (op_a, a), (op_b, b) = cell[2 * i], cell[2 * i + 1]
                g += [sp.pairs(i).index((a, b)), sp.ops.index(op_a), sp.ops.index(op_b)]
        return g

    def encode(self) -> list[float]:
        return self.space.encode_many([self])[0].tolist()

    def build(self) -> nn.Module:
        return DartsNetwork(self)


class DartsCell(nn.Module):
    def __init__(self, arch: DartsArch, pos: CellPosition):
        super().__init__()
        sp = arch.space
        pre0, pre1, *_ = pos.fixed_layers(sp)
        self.pre0, self.pre1 = pre0.build(), pre1.build()
        cell = getattr(arch, pos.type)
        self.inputs = [j for _, j in cell]
        self.ops = nn.ModuleList((d.build() if (d := pos.op_layer(op, j < 2)) is not None else nn.Identity())
                                 for op, j in cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(len(self.ops) // 2):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], 1)


class DartsNetwork(nn.Module):
    """DARTS's evaluation network (NetworkCIFAR, without the auxiliary head and drop-path)."""

    def __init__(self, arch: DartsArch):
        super().__init__()
        sp = arch.space
        self.stem = sp._stem(arch.resolution).build()
        self.cells = nn.ModuleList(DartsCell(arch, pos) for pos in sp.positions(arch.resolution))
        self.head = sp._head(arch.resolution).build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)
