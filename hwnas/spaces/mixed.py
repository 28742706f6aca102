"""The mixed (macro + micro) space kind: a network-level macro of stages whose bodies are cells of a
NAS-Bench-201-style cell space named in the file, searched together.

Macro genes: the number of stages, each stage's width and depth (how many cells it stacks), the input
resolution; micro genes: the cell's operation per edge (one cell, shared by every stage, as NAS-Bench-201
shares it). The network: a 3x3 conv stem to the first stage's width; the first stage's cells at the input
resolution; every later stage opens with NAS-Bench-201's residual reduction block (stride 2, the previous
width to its own); BN-ReLU, global pooling and a linear classifier. Space files say ``"kind": "mixed"`` and
name the cell space (``"cell": "cell-demo"``: its nodes and operations; the macro sets the channels).

A cell whose output node no path reaches is repaired (the edge from the cell's input to its output is
set to ``skip``, or the first operation there is), and dead edges are set to ``none``: every draw, mutation
and crossover is a network that computes from its input, with one arch id per network. Latency: the LUT
entries of the stem, the reduction blocks, each cell's live edges and node adds, and the head, calibrated.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.core import jsonio
from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.cells import Cell, CellSpace, cell_layers, live_edges
from hwnas.spaces.base import (arch_id, KindParts, SPACES, ArchError, SpaceError, as_rng, check_fields, plain_fields,
                                read_ints, read_number, read_string,
                                at_resolutions, check_arch_space, checked_resolutions, distinct_samples, get_space,
                                read_fields)


@SPACES.register("mixed")
@dataclass(frozen=True)
class MixedSpace:
    """Stages (macro) of cells (micro): ``widths[p]`` and ``depths`` per stage position, the cell of ``cell``."""

    name: str
    cell: str                                  # a shipped cell space's name, or a path to a cell space file
    stage_counts: tuple[int, ...]
    widths: tuple[tuple[int, ...], ...]        # candidate widths per stage position
    depths: tuple[int, ...] = (1, 2, 3)        # cells per stage
    resolutions: tuple[int, ...] = (32,)
    in_channels: int = 3
    num_classes: int = 10
    description: str = ""
    kind: str = "mixed"
    parts = KindParts(latency_predictor="hwnas.latency.mixed_predict:MixedLatencyPredictor")

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "MixedSpace":
        def convert(name: str, value: Any, where: str) -> Any:
            if name in ("name", "description", "kind", "cell"):
                return read_string(value, where)
            if name == "widths":
                if not isinstance(value, list) or not value or not all(isinstance(v, list) for v in value):
                    raise SpaceError(f"{where} must list one width list per stage position, got {value!r:.60}")
                return tuple(read_ints(v, f"{where}[{i}]") for i, v in enumerate(value))
            if name in ("stage_counts", "depths", "resolutions"):
                return read_ints(value, where)
            return read_number(value, int, where)

        return read_fields(cls, data, source, ("name", "kind", "cell", "stage_counts", "widths"), convert)

    def validate(self, source: str = "space") -> None:
        def err(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if self.kind != "mixed":
            raise err(f"field 'kind' must be 'mixed' for a mixed space, got {self.kind!r}")
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise err(f"field 'name' must be a non-empty word of letters, digits, '-', '_' or '.', got {self.name!r}")
        try:
            micro = get_space(self.cell)
        except SpaceError as e:
            raise err(f"field 'cell': {e}") from None
        if micro.kind != "cell":
            raise err(f"field 'cell' must name a space of kind 'cell' (NAS-Bench-201 style), got {self.cell!r} of "
                      f"kind {micro.kind!r}")
        n = len(self.widths)
        if not 1 <= n <= 8 or any(not 1 <= c <= n for c in self.stage_counts):
            raise err(f"fields 'widths' (one list per stage position, 1..8) and 'stage_counts' (1..{n}) disagree: "
                      f"{n} positions, counts {list(self.stage_counts)}")
        if any(w < 1 or w > 2048 for ws in self.widths for w in ws) or any(len(set(ws)) != len(ws) for ws in self.widths):
            raise err(f"field 'widths' must list distinct widths 1..2048 per stage position, got "
                      f"{[list(w) for w in self.widths]}")
        if any(not 1 <= d <= 20 for d in self.depths) or len(set(self.depths)) != len(self.depths):
            raise err(f"field 'depths' must list distinct cell counts 1..20, got {list(self.depths)}")
        reduction = 2 ** (n - 1)
        if not self.resolutions or any(r < 2 * reduction or r % reduction for r in self.resolutions):
            raise err(f"field 'resolutions' must list sizes that halve evenly at each of the {n - 1} reductions "
                      f"(multiples of {reduction}), got {list(self.resolutions)}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise err("in_channels must be >= 1 and num_classes >= 2")

    @cached_property
    def micro(self) -> CellSpace:
        """The cell space whose cells the stages stack (its nodes and ops; channels come from the macro)."""
        return get_space(self.cell)

    @property
    def edges(self) -> list[tuple[int, int]]:
        return self.micro.edges

    @property
    def ops(self) -> tuple[str, ...]:
        return self.micro.ops

    @property
    def max_stages(self) -> int:
        return len(self.widths)

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "MixedSpace":
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)

    @cached_property
    def digest(self) -> str:
        # the cell space's content counts, not only its name: a changed cell file is another space
        blob = {**self.to_dict(), "cell_space": self.micro.to_dict()}
        return hashlib.sha256(jsonio.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]

    # -- shapes and latency keys ------------------------------------------------
    def stem(self, res: int, width: int) -> LayerDesc:
        return LayerDesc("conv", self.in_channels, width, res, kernel=3, act="none")

    def reduction(self, cin: int, cout: int, res: int) -> LayerDesc:
        return LayerDesc("resblock", cin, cout, res, kernel=3, stride=2, act="relu")

    def head(self, cin: int, res: int) -> LayerDesc:
        return LayerDesc("poolhead", cin, self.num_classes, res, act="relu")

    def layers(self, arch: "MixedArch") -> list[LayerDesc]:
        return arch.layers()

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        seen: dict[str, LayerDesc] = {}
        every_op = [op for op in self.ops if op != "none" or self.micro.dead_edges == "computed"]  # (x * 0 blocks)
        for res in checked_resolutions(self, resolutions):
            r = res
            for p, ws in enumerate(self.widths):
                for w in ws:
                    for d in ([self.stem(res, w)] if p == 0 else
                              [self.reduction(cin, w, 2 * r) for cin in self.widths[p - 1]]):
                        seen.setdefault(d.key, d)
                    for op in every_op:  # an all-same-op cell holds that op's block and the node adds
                        for d in cell_layers(self.micro, (op,) * len(self.edges), w, r):
                            seen.setdefault(d.key, d)
                    if p + 1 in self.stage_counts:
                        seen.setdefault((d := self.head(w, r)).key, d)
                r //= 2
        return list(seen.values())

    def size(self) -> int:
        per_stage = [len(ws) * len(self.depths) for ws in self.widths]
        macro = sum(int(np.prod(per_stage[:n])) for n in self.stage_counts)
        return len(self.resolutions) * macro * len(self.ops) ** len(self.edges)

    # -- architectures -------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> "MixedArch":
        rng = as_rng(rng)
        n = rng.choice(self.stage_counts)
        stages = tuple((rng.choice(self.widths[p]), rng.choice(self.depths)) for p in range(n))
        return MixedArch(self, rng.choice(self.resolutions), stages,
                         tuple(rng.choice(self.ops) for _ in self.edges)).canonical()

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["MixedArch"]:
        return distinct_samples(self.sample, n, as_rng(rng), exclude)

    def largest(self) -> "MixedArch":
        big = "conv3x3" if "conv3x3" in self.ops else self.ops[-1]
        n = max(self.stage_counts)
        return MixedArch(self, max(self.resolutions), tuple((max(self.widths[p]), max(self.depths)) for p in range(n)),
                         (big,) * len(self.edges)).canonical()

    def smallest(self) -> "MixedArch":
        n = min(self.stage_counts)
        return MixedArch(self, min(self.resolutions), tuple((min(self.widths[p]), min(self.depths)) for p in range(n)),
                         ("none",) * len(self.edges) if "none" in self.ops else (self.ops[0],) * len(self.edges)
                         ).canonical()

    def arch_from_dict(self, data: Any, source: str = "arch") -> "MixedArch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_arch_space(data, self, {"kernels", "expands", "width", "normal"}, source)
        check_fields(data, {"space", "resolution", "stages", "ops"}, ("resolution", "stages", "ops"), source, ArchError)
        stages = data["stages"]
        if not isinstance(stages, list) or not all(isinstance(s, dict) and set(s) == {"width", "depth"} for s in stages):
            raise ArchError(f"{source}: field 'stages' must list {{\"width\": W, \"depth\": D}} objects")
        ops = data["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise ArchError(f"{source}: field 'ops' must list {len(self.edges)} operation names")
        arch = MixedArch(self, read_number(data["resolution"], int, f"{source}: field 'resolution'", ArchError),
                         tuple((read_number(s["width"], int, f"{source}: stage width", ArchError),
                                read_number(s["depth"], int, f"{source}: stage depth", ArchError)) for s in stages),
                         tuple(ops))
        arch.validate(source)
        return arch

    def load_arch(self, path: str | Path) -> "MixedArch":
        return self.arch_from_dict(jsonio.loads_file(path, ArchError, "architecture file"), source=str(path))

    def gene_upper_bounds(self) -> list[int]:
        ub = [len(self.resolutions) - 1, len(self.stage_counts) - 1]
        for ws in self.widths:
            ub += [len(ws) - 1, len(self.depths) - 1]
        return ub + [len(self.ops) - 1] * len(self.edges)

    def from_genes(self, genes: Iterable[int]) -> "MixedArch":
        g = list(genes)
        n = self.stage_counts[g[1]]
        stages = tuple((self.widths[p][g[2 + 2 * p]], self.depths[g[3 + 2 * p]]) for p in range(n))
        ops = tuple(self.ops[i] for i in g[2 + 2 * self.max_stages:])
        return MixedArch(self, self.resolutions[g[0]], stages, ops).canonical()

    def encode_many(self, archs: Sequence["MixedArch"]) -> np.ndarray:
        sizes = [u + 1 for u in self.gene_upper_bounds()]
        offsets = np.cumsum([0] + sizes[:-1])
        out = np.zeros((len(archs), sum(sizes)))
        for n, a in enumerate(archs):
            g = a.genes()
            active = [True, True] + [p < len(a.stages) for p in range(self.max_stages) for _ in (0, 1)] \
                + [True] * len(self.edges)
            for i, on in enumerate(active):
                if on:
                    out[n, offsets[i] + g[i]] = 1.0
        return out

    @property
    def encoding_size(self) -> int:
        return sum(u + 1 for u in self.gene_upper_bounds())


@dataclass(frozen=True)
class MixedArch:
    """One network of a mixed space: resolution, ``(width, depth)`` per stage, the cell's op per edge."""

    space: MixedSpace = field(compare=False, repr=False)
    resolution: int
    stages: tuple[tuple[int, int], ...]
    ops: tuple[str, ...]

    def validate(self, source: str = "arch") -> None:
        sp = self.space
        if self.resolution not in sp.resolutions:
            raise ArchError(f"{source}: resolution {self.resolution} is not allowed; choose from {list(sp.resolutions)}")
        if len(self.stages) not in sp.stage_counts:
            raise ArchError(f"{source}: {len(self.stages)} stages; this space allows {list(sp.stage_counts)}")
        for p, (w, d) in enumerate(self.stages):
            if w not in sp.widths[p] or d not in sp.depths:
                raise ArchError(f"{source}: stages[{p}] = width {w}, depth {d}; allowed widths {list(sp.widths[p])}, "
                                f"depths {list(sp.depths)}")
        if len(self.ops) != len(sp.edges) or any(op not in sp.ops for op in self.ops):
            raise ArchError(f"{source}: field 'ops' must list {len(sp.edges)} operations from {list(sp.ops)}, got "
                            f"{list(self.ops)}")
        if not any(live_edges(sp.micro, self.ops)):
            raise ArchError(f"{source}: no path of the cell's edges reaches its output: the network would ignore its "
                            f"input; give the edge from node 0 to node {sp.micro.nodes - 1} an operation")

    def canonical(self) -> "MixedArch":
        """Repaired (a cell with no path gets its input-to-output edge) and dead edges set to ``none``."""
        sp = self.space
        ops = list(self.ops)
        if not any(live_edges(sp.micro, ops)):
            last = sp.edges.index((sp.micro.nodes - 1, 0))
            ops[last] = "skip" if "skip" in sp.ops else next(o for o in sp.ops if o != "none")
        ops = [op if on else "none" for op, on in zip(ops, live_edges(sp.micro, ops))]
        return self if tuple(ops) == self.ops else MixedArch(sp, self.resolution, self.stages, tuple(ops))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "resolution": self.resolution,
                "stages": [{"width": w, "depth": d} for w, d in self.stages], "ops": list(self.ops)}

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), sort_keys=True)

    @cached_property
    def id(self) -> str:
        return arch_id(self)

    @property
    def summary(self) -> str:
        return "stages " + " ".join(f"{d}x{w}" for w, d in self.stages) + " cell " + "|".join(self.ops)

    def describe(self) -> str:
        return f"resolution {self.resolution}, stages (width, cells) {list(self.stages)}, cell ops {list(self.ops)}"

    def report_fields(self) -> dict[str, Any]:
        return {"stages": len(self.stages)}

    def shapes(self) -> list[tuple[int, int, int]]:
        """(width, cells, pixels) per stage."""
        out, r = [], self.resolution
        for p, (w, d) in enumerate(self.stages):
            r = r if p == 0 else r // 2
            out.append((w, d, r))
        return out

    def layers(self) -> list[LayerDesc]:
        sp = self.space
        out, prev = [], None
        for p, (w, d, r) in enumerate(self.shapes()):
            out.append(sp.stem(r, w) if p == 0 else sp.reduction(prev, w, 2 * r))
            out += cell_layers(sp.micro, self.ops, w, r) * d
            prev = w
        w, _, r = self.shapes()[-1]
        return out + [sp.head(w, r)]

    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "MixedArch":
        """Macro and micro genes redrawn with probability ``prob`` each (a stage added or dropped with the stage
        count); repaired where the cell loses its path."""
        rng, sp = as_rng(rng), self.space
        g = [rng.randint(0, u) if rng.random() < prob else v for v, u in zip(self.genes(), sp.gene_upper_bounds())]
        return sp.from_genes(g)

    def crossover(self, other: "MixedArch", rng: random.Random | int | None = None) -> "MixedArch":
        """The macro of one parent with the cell of the other, or each part from either: gene by gene."""
        rng, sp = as_rng(rng), self.space
        g = [a if rng.random() < 0.5 else b for a, b in zip(self.genes(), other.genes())]
        return sp.from_genes(g)

    def genes(self) -> list[int]:
        sp = self.space
        g = [sp.resolutions.index(self.resolution), sp.stage_counts.index(len(self.stages))]
        for p in range(sp.max_stages):
            if p < len(self.stages):
                w, d = self.stages[p]
                g += [sp.widths[p].index(w), sp.depths.index(d)]
            else:
                g += [0, 0]
        return g + [sp.ops.index(op) for op in self.ops]

    def encode(self) -> list[float]:
        return self.space.encode_many([self])[0].tolist()

    def build(self) -> nn.Module:
        return MixedNetwork(self)


class MixedNetwork(nn.Module):
    def __init__(self, arch: MixedArch):
        super().__init__()
        sp = arch.space
        layers: list[nn.Module] = []
        prev = None
        for p, (w, d, r) in enumerate(arch.shapes()):
            layers.append((sp.stem(r, w) if p == 0 else sp.reduction(prev, w, 2 * r)).build())
            layers += [Cell(sp.micro, arch.ops, w) for _ in range(d)]
            prev = w
        w, _, r = arch.shapes()[-1]
        self.body = nn.Sequential(*layers, sp.head(w, r).build())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
