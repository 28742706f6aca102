"""The cell-based (micro) search space, NAS-Bench-201 style: one cell, a small DAG, repeated to build the network.

A cell has ``nodes`` nodes (4 by default); node 0 is the cell's input and every later node is the sum
of one operation per earlier node (an *edge*: 6 edges for 4 nodes); the last node is the output. Each
edge is one of ``none`` (no connection), ``skip``, ``conv1x1``, ``conv3x3`` (ReLU-conv-BN) or
``avgpool3x3``. The network: a 3x3 stem, ``cells_per_stage`` cells per stage, a residual reduction
block (stride 2) between stages, BN-ReLU, global pooling, a linear classifier. A cell whose output
node is reached by no path gives zeros, as in NAS-Bench-201.

Space files say ``"kind": "cell"``; ``hwnas.spaces.base.get_space`` reads them. Latency: a cell network is
priced as the sum of its blocks' LUT entries (:meth:`CellArch.layers`): the stem, each *live* edge's
op (``conv1x1``/``conv3x3``/``avgpool3x3``; ``skip`` and ``none`` are free), one ``add`` per extra input
of a node, the reduction blocks and the head. An edge is live when it lies on a path from the cell's
input to its output; the others change nothing the network computes, so the network does not run
them (and ONNX export would drop them anyway).
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.spaces import blocks

from hwnas.core import jsonio
from hwnas.spaces.blocks import BlockType, LayerDesc
from hwnas.spaces.base import (arch_id, SPACES, ArchError, KindParts, SpaceError, as_rng, at_resolutions, check_arch_space,
                               check_fields, checked_resolutions, distinct_samples, read_fields, read_number,
                               read_string)

OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
# NAS-Bench-201's names of the same operations (its cell strings and benchmark files use them)
NB201_OPS = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3",
             "avg_pool_3x3": "avgpool3x3"}


@SPACES.register("cell")
@dataclass(frozen=True)
class CellSpace:
    """A NAS-Bench-201 style cell space: one operation per edge of a small DAG, the cell repeated per stage."""

    name: str
    channels: tuple[int, ...] = (16, 32, 64)  # one per stage
    cells_per_stage: int = 5
    nodes: int = 4
    ops: tuple[str, ...] = OPS
    resolutions: tuple[int, ...] = (32,)
    in_channels: int = 3
    num_classes: int = 10
    description: str = ""
    kind: str = "cell"
    dead_edges: str = "pruned"  # or "computed": every non-none edge runs, as NAS-Bench-201's own code builds it
    parts = KindParts(latency_predictor="hwnas.latency.predict:CellLatencyPredictor",  # not a field: a ClassVar
                      supernet="hwnas.evaluate.cell_supernet:CellSupernet", supernet_sampling="fair")

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "CellSpace":
        def convert(name: str, value: Any, where: str) -> Any:
            if name in ("name", "description", "kind", "dead_edges"):
                return read_string(value, where)
            if name == "ops":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SpaceError(f"{where} must be a list of operation names from {list(OPS)}")
                return tuple(value)
            if name in ("channels", "resolutions"):
                if not isinstance(value, list):
                    raise SpaceError(f"{where} must be a list of whole numbers, got {value!r}")
                return tuple(read_number(v, int, f"{where}[{i}]") for i, v in enumerate(value))
            return read_number(value, int, where)

        return read_fields(cls, data, source, ("name", "kind", "channels"), convert)

    def validate(self, source: str = "space") -> None:
        def err(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if self.kind != "cell":
            raise err(f"field 'kind' must be 'cell' for a cell space, got {self.kind!r}")
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise err(f"field 'name' must be a non-empty word of letters, digits, '-', '_' or '.', got {self.name!r}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise err(f"field 'channels' must list one width >= 1 per stage, got {list(self.channels)}")
        if not 2 <= self.nodes <= 8:
            raise err(f"field 'nodes' must be 2..8, got {self.nodes}")
        if self.cells_per_stage < 1:
            raise err(f"field 'cells_per_stage' must be >= 1, got {self.cells_per_stage}")
        unknown = [o for o in self.ops if o not in OPS]
        if unknown or len(set(self.ops)) != len(self.ops) or not self.ops:
            raise err(f"field 'ops' must list distinct operations from {list(OPS)}, got {list(self.ops)}")
        if set(self.ops) == {"none"}:
            raise err("field 'ops' lists only 'none': every cell would cut its input off, so every network would ignore "
                      "its image; add an operation that connects (skip, conv1x1, conv3x3, avgpool3x3)")
        reduction = 2 ** (len(self.channels) - 1)
        if not self.resolutions or min(self.resolutions) < max(8, reduction):
            raise err(f"field 'resolutions' must list sizes >= {max(8, reduction)} (the total stride "
                      f"{reduction}), got {list(self.resolutions)}")
        odd = [r for r in self.resolutions if any((r >> k) % 2 for k in range(len(self.channels) - 1))]
        if odd:
            raise err(f"field 'resolutions': {odd} cannot be halved evenly at each of the "
                      f"{len(self.channels) - 1} reduction(s) (the residual shortcut pools 2x2); use multiples of "
                      f"{reduction}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise err("in_channels must be >= 1 and num_classes >= 2")
        if self.dead_edges not in ("pruned", "computed"):
            raise err(f"field 'dead_edges' must be 'pruned' (edges on no input-to-output path are not run) or "
                      f"'computed' (every non-none edge runs, as NAS-Bench-201's reference code), got "
                      f"{self.dead_edges!r}")

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "CellSpace":
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        """The space as its file says it; ``dead_edges`` only when not the default (so a pruned space's
        digest, and its archs' ids, are what they were before the field existed)."""
        out = {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
        if out["dead_edges"] == "pruned":
            del out["dead_edges"]
        return out

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(jsonio.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(to, from) node pairs in gene order: (1,0), (2,0), (2,1), (3,0), ..."""
        return [(j, i) for j in range(1, self.nodes) for i in range(j)]

    # -- latency keys ----------------------------------------------------------
    def layers(self, arch: "CellArch") -> list[LayerDesc]:
        return network_layers(self, arch.ops, arch.resolution)

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        """Every distinct block any arch of the space can contain at ``resolutions`` (the keys a full LUT needs)."""
        resolutions = checked_resolutions(self, resolutions)
        seen: dict[str, LayerDesc] = {}
        every_op = [op for op in self.ops if op != "none" or self.dead_edges == "computed"]
        for res in resolutions:
            # one arch per op with that op on every edge holds every (op, stage) block; "add" needs >= 2 live
            # inputs at a node, which any all-same-op cell (op != none, or computed edges) has
            for op in every_op:
                for d in network_layers(self, (op,) * len(self.edges), res):
                    seen.setdefault(d.key, d)
        return list(seen.values())

    def size(self) -> int:
        return len(self.resolutions) * len(self.ops) ** len(self.edges)

    def all_archs(self) -> Iterator["CellArch"]:
        """Every arch of the space (``size()`` of them), in gene order."""
        for res in self.resolutions:
            for ops in itertools.product(self.ops, repeat=len(self.edges)):
                yield CellArch(self, res, ops)

    # -- architectures -------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> "CellArch":
        rng = as_rng(rng)
        return CellArch(self, rng.choice(self.resolutions), tuple(rng.choice(self.ops) for _ in self.edges))

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["CellArch"]:
        return distinct_samples(self.sample, n, as_rng(rng), exclude)

    def largest(self) -> "CellArch":
        big = "conv3x3" if "conv3x3" in self.ops else self.ops[-1]
        return CellArch(self, max(self.resolutions), (big,) * len(self.edges))

    def smallest(self) -> "CellArch":
        small = "none" if "none" in self.ops else self.ops[0]
        return CellArch(self, min(self.resolutions), (small,) * len(self.edges))

    def arch_from_dict(self, data: Any, source: str = "arch") -> "CellArch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_arch_space(data, self, {"kernels", "expands", "depths", "width"}, source)
        check_fields(data, {"space", "resolution", "ops"}, ("resolution", "ops"), source, ArchError)
        ops = data["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise ArchError(f"{source}: field 'ops' must list {len(self.edges)} operation names")
        arch = CellArch(self, read_number(data["resolution"], int, f"{source}: field 'resolution'", ArchError), tuple(ops))
        arch.validate(source)
        return arch

    def arch_from_text(self, text: str, source: str = "arch") -> "CellArch":
        """An arch from NAS-Bench-201's string form, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (the form its
        benchmark files and papers index cells by), at the space's smallest resolution; the node count
        follows from the string (a 4-node cell has 6 edges)."""
        ops: list[str] = []
        nodes = [n for n in text.strip().strip("|").split("|+|")] if text.strip() else []
        if len(nodes) != self.nodes - 1:
            raise ArchError(f"{source}: {text.strip()!r} is not a NAS-Bench-201 cell string of this space's "
                            f"{self.nodes} nodes (e.g. {self.nb201_example()!r})")
        for j, node in enumerate(nodes, start=1):
            tokens = node.strip("|").split("|")
            if len(tokens) != j:
                raise ArchError(f"{source}: node {j} of {text.strip()!r} lists {len(tokens)} inputs; it takes {j}")
            for i, token in enumerate(tokens):
                name, _, frm = token.partition("~")
                if frm != str(i) or name not in NB201_OPS:
                    raise ArchError(f"{source}: {token!r} in {text.strip()!r} is not OP~{i} with OP one of "
                                    f"{sorted(NB201_OPS)}")
                ops.append(NB201_OPS[name])
        arch = CellArch(self, min(self.resolutions), tuple(ops))
        arch.validate(source)
        return arch

    def nb201_example(self) -> str:
        """A cell string of this space's shape, every edge ``skip_connect``: what a message shows."""
        return "|" + "|+|".join("|".join(f"skip_connect~{i}" for i in range(j)) for j in range(1, self.nodes)) + "|"

    def load_arch(self, path: str | Path) -> "CellArch":
        return self.arch_from_dict(jsonio.loads_file(path, ArchError, "architecture file"), source=str(path))

    def gene_upper_bounds(self) -> list[int]:
        return [len(self.resolutions) - 1] + [len(self.ops) - 1] * len(self.edges)

    def from_genes(self, genes: Iterable[int]) -> "CellArch":
        g = [int(v) for v in genes]
        return CellArch(self, self.resolutions[g[0]], tuple(self.ops[i] for i in g[1:]))

    def encode_many(self, archs: Sequence["CellArch"]) -> np.ndarray:
        out = np.zeros((len(archs), self.encoding_size))
        nr, no = len(self.resolutions), len(self.ops)
        for n, a in enumerate(archs):
            out[n, self.resolutions.index(a.resolution)] = 1.0
            for e, op in enumerate(a.ops):
                out[n, nr + e * no + self.ops.index(op)] = 1.0
        return out

    @property
    def encoding_size(self) -> int:
        return len(self.resolutions) + len(self.edges) * len(self.ops)


@dataclass(frozen=True)
class CellArch:
    """One network of a cell space: its input resolution and one operation per edge (``space.edges`` order)."""

    space: CellSpace = field(compare=False, repr=False)
    resolution: int
    ops: tuple[str, ...]

    def validate(self, source: str = "arch") -> None:
        sp = self.space
        if self.resolution not in sp.resolutions:
            raise ArchError(f"{source}: resolution {self.resolution} is not allowed; choose from {list(sp.resolutions)}")
        if len(self.ops) != len(sp.edges):
            raise ArchError(f"{source}: {len(self.ops)} ops given; a {sp.nodes}-node cell has {len(sp.edges)} edges")
        for e, op in enumerate(self.ops):
            if op not in sp.ops:
                raise ArchError(f"{source}: ops[{e}] = {op!r} is not allowed; choose from {list(sp.ops)}")

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "resolution": self.resolution, "ops": list(self.ops)}

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), sort_keys=True)

    @cached_property
    def id(self) -> str:
        return arch_id(self)

    @property
    def connected(self) -> bool:
        """Whether some path of non-``none`` edges leads from the input to the output node."""
        reach = {0}
        for (j, i), op in zip(self.space.edges, self.ops):
            if op != "none" and i in reach:
                reach.add(j)
        return self.space.nodes - 1 in reach

    @property
    def live(self) -> list[bool]:
        """Per edge: on a path from input to output (see :func:`live_edges`)."""
        return live_edges(self.space, self.ops)

    def canonical(self) -> "CellArch":
        """The same network with every dead edge (on no input-to-output path) set to ``none``: archs that
        differ only on dead edges compute the same function at the same cost, so a search evaluates and
        lists one of them (NAS-Bench-201 counts its 15,625 cells as 6,466 unique networks the same way)."""
        ops = tuple(op if on else "none" for op, on in zip(self.ops, self.live))
        return self if ops == self.ops else CellArch(self.space, self.resolution, ops)

    @property
    def summary(self) -> str:
        """What tells archs of this kind apart at a glance (logs, tables): the edge ops in gene order."""
        return "ops " + "|".join(self.ops)

    def describe(self) -> str:
        """The report's line for this arch: one op per edge (1<-0, 2<-0, 2<-1, 3<-0, ...)."""
        d = self.to_dict()
        return f"resolution {d['resolution']}, cell edge ops (in gene order) {d['ops']}"

    def report_fields(self) -> dict[str, Any]:
        """What ``hwnas predict --json`` adds for an arch of this kind beside its id and summary: nothing."""
        return {}

    def layers(self) -> list[LayerDesc]:
        """The LUT keys of this network (stem, live edge ops and node adds per cell, reductions, head)."""
        return network_layers(self.space, self.ops, self.resolution)

    @property
    def nb201(self) -> str:
        """The cell in NAS-Bench-201's string form (``|nor_conv_3x3~0|+|...``), as its benchmark files index it."""
        names = {ours: theirs for theirs, ours in NB201_OPS.items()}
        it = iter(self.ops)
        return "|" + "|+|".join("|".join(f"{names[next(it)]}~{i}" for i in range(j))
                                for j in range(1, self.space.nodes)) + "|"

    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "CellArch":
        rng, sp = as_rng(rng), self.space
        res = rng.choice(sp.resolutions) if rng.random() < prob else self.resolution
        return CellArch(sp, res, tuple(rng.choice(sp.ops) if rng.random() < prob else o for o in self.ops))

    def crossover(self, other: "CellArch", rng: random.Random | int | None = None) -> "CellArch":
        rng = as_rng(rng)
        pick = lambda a, b: a if rng.random() < 0.5 else b  # noqa: E731
        return CellArch(self.space, pick(self.resolution, other.resolution),
                        tuple(pick(a, b) for a, b in zip(self.ops, other.ops)))

    def genes(self) -> list[int]:
        return [self.space.resolutions.index(self.resolution)] + [self.space.ops.index(o) for o in self.ops]

    def encode(self) -> list[float]:
        return self.space.encode_many([self])[0].tolist()

    def build(self) -> nn.Module:
        return CellNetwork(self)


# -- the networks ------------------------------------------------------------
# Every part with a cost is built from its LayerDesc (hwnas.spaces.blocks), the LUT key the predictor prices:
# the network, the profiled blocks and the exported model cannot disagree.
ReLUConvBN, ReductionBlock = blocks.ReLUConvBN, blocks.ReductionBlock  # their home is blocks; kept importable here
EDGE_DESC = {"conv1x1": ("rcb", 1, "relu"), "conv3x3": ("rcb", 3, "relu"), "avgpool3x3": ("avgpool", 3, "none")}


def edge_desc(name: str, c: int, res: int) -> LayerDesc | None:
    """The block an edge runs at ``c`` channels and ``res`` pixels; None for ``skip`` and ``none`` (free; a
    computed space's ``none`` is priced per source node, :func:`zero_blocks`)."""
    if name in ("skip", "none"):
        return None
    if name not in EDGE_DESC:
        raise ValueError(f"no module for edge operation {name!r}")
    op, k, act = EDGE_DESC[name]
    return LayerDesc(op, c, c, res, kernel=k, stride=1, act=act)


def edge_op(name: str, c: int) -> nn.Module:
    desc = edge_desc(name, c, 1)
    return nn.Identity() if desc is None else desc.build()


def live_mask(space: CellSpace, on: np.ndarray) -> np.ndarray:
    """The edges that run [N, E] in many cells at once, from which edges are not ``none`` (``on`` [N, E]
    bool). In a ``pruned`` space (the default) an edge is live when it lies on a path of such edges from the
    input to the output node: edges off every such path change nothing the network computes, so they are
    neither run nor priced. In a ``computed`` space every non-``none`` edge runs (NAS-Bench-201's own code:
    what the devices of its latency benchmarks ran), live or not."""
    on = np.asarray(on, dtype=bool).reshape(-1, len(space.edges))
    if getattr(space, "dead_edges", "pruned") == "computed":
        return on.copy()
    fwd = np.zeros((len(on), space.nodes), bool)
    fwd[:, 0] = True
    for e, (j, i) in enumerate(space.edges):  # edges come in order of their target node
        fwd[:, j] |= on[:, e] & fwd[:, i]
    back = np.zeros((len(on), space.nodes), bool)
    back[:, -1] = True
    for e in sorted(range(len(space.edges)), key=lambda e: -space.edges[e][0]):
        j, i = space.edges[e]
        back[:, i] |= on[:, e] & back[:, j]
    src, dst = np.array([i for _, i in space.edges]), np.array([j for j, _ in space.edges])
    return on & fwd[:, src] & back[:, dst]


def node_adds(space: CellSpace, live: np.ndarray) -> np.ndarray:
    """Adds per cell [N]: one per live input of a node beyond its first. With computed edges every edge is an
    input, ``none`` too (NAS-Bench-201 sums ``x * 0`` into the node): edges minus non-input nodes, per cell."""
    live = np.asarray(live).reshape(-1, len(space.edges))
    if getattr(space, "dead_edges", "pruned") == "computed":
        return np.full(len(live), len(space.edges) - (space.nodes - 1))
    into = np.zeros((len(space.edges), space.nodes), int)
    into[np.arange(len(space.edges)), [j for j, _ in space.edges]] = 1
    return np.maximum(live.astype(int) @ into - 1, 0).sum(axis=1)


class ZeroOp(nn.Module):
    """NAS-Bench-201's ``none`` where edges are computed: ``x * 0``, so a node that only ``none`` edges leave
    still feeds the output and a graph exporter cannot drop what computed it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


# the block a computed ``none`` edge is priced as (hwnas.spaces.blocks registers it under "zero")
ZERO = BlockType(build=lambda d: ZeroOp(), macs=lambda d: 0, params=lambda d: 0, strided=False)


def live_edges(space: CellSpace, ops: Sequence[str]) -> list[bool]:
    """Per edge of one cell: live or not (:func:`live_mask`)."""
    return live_mask(space, np.array([op != "none" for op in ops]))[0].tolist()


def zero_blocks(space: CellSpace, none: np.ndarray) -> np.ndarray:
    """``zero`` blocks per cell [N] from which edges are ``none`` (``none`` [N, E] bool). Where edges are computed,
    ``none`` is NAS-Bench-201's ``x * 0``: a kernel every device runs (on a GPU at batch 1 as dear as any small
    op), so it is a block, timed and priced like the others. The exported graph computes ``x * 0`` once per
    source node however many ``none`` edges leave it (the exporter merges the identical products), so one
    block per node with a ``none`` edge out of it. 0 in a pruned space (``none`` runs nothing)."""
    none = np.asarray(none, dtype=bool).reshape(-1, len(space.edges))
    if getattr(space, "dead_edges", "pruned") != "computed":
        return np.zeros(len(none), int)
    out_of = np.zeros((len(space.edges), space.nodes), int)
    out_of[np.arange(len(space.edges)), [i for _, i in space.edges]] = 1
    return ((none.astype(int) @ out_of) > 0).sum(axis=1)


def cell_layers(space: CellSpace, ops: Sequence[str], c: int, res: int) -> list[LayerDesc]:
    """The priced blocks of one cell: each live edge's op, one ``add`` per extra input of a node, and where
    edges are computed one ``zero`` per node that ``none`` edges leave (:func:`zero_blocks`)."""
    live = live_mask(space, np.array([op != "none" for op in ops]))
    out = [d for op, on in zip(ops, live[0]) if on and (d := edge_desc(op, c, res)) is not None]
    zeros = int(zero_blocks(space, np.array([op == "none" for op in ops]))[0])
    return (out + [LayerDesc("add", c, c, res, act="none")] * int(node_adds(space, live)[0])
            + [LayerDesc("zero", c, c, res, act="none")] * zeros)


def network_layers(space: CellSpace, ops: Sequence[str], resolution: int) -> list[LayerDesc]:
    """Stem, cells and reduction blocks per stage, head: the LUT keys of a cell network, in order.

    None for a network whose cell has no path from input to output: its output is a constant (the head
    applied to zeros), which graph runtimes fold away and :class:`CellNetwork` computes without the input."""
    if not any(live_edges(space, ops)) and space.dead_edges == "pruned":
        return []  # computed (NAS-Bench-201's code): stem, reductions and head still run on the zeros
    stem, reductions, head = fixed_layers(space, resolution)
    out = [stem]
    for s, (c, r) in enumerate(stage_shapes(space, resolution)):
        if s:
            out.append(reductions[s - 1])
        for _ in range(space.cells_per_stage):
            out += cell_layers(space, ops, c, r)
    return out + [head]


def stage_shapes(space: CellSpace, resolution: int) -> list[tuple[int, int]]:
    """(channels, pixels) of the cells of each stage."""
    out, r = [], resolution
    for s, c in enumerate(space.channels):
        r = r if s == 0 else (r + 1) // 2  # the reduction block's 3x3 stride-2 conv, padding 1
        out.append((c, r))
    return out


def fixed_layers(space: CellSpace, resolution: int) -> tuple[LayerDesc, list[LayerDesc], LayerDesc]:
    """The blocks every connected network of the space has: stem, the reduction blocks, head."""
    shapes = stage_shapes(space, resolution)
    stem = LayerDesc("conv", space.in_channels, space.channels[0], resolution, kernel=3, stride=1, act="none")
    reductions = [LayerDesc("resblock", shapes[s - 1][0], c, shapes[s - 1][1], kernel=3, stride=2, act="relu")
                  for s, (c, _) in enumerate(shapes) if s]
    head = LayerDesc("poolhead", space.channels[-1], space.num_classes, shapes[-1][1], act="relu")
    return stem, reductions, head


class Cell(nn.Module):
    def __init__(self, space: CellSpace, ops: Sequence[str], c: int):
        super().__init__()
        self.nodes = space.nodes
        self.computed = space.dead_edges == "computed"
        self.edges = [(j, i, op) for (j, i), op in zip(space.edges, ops) if op != "none" or self.computed]
        self.live = [live or self.computed for op, live in zip(ops, live_edges(space, ops))
                     if op != "none" or self.computed]
        self.ops = nn.ModuleList(ZeroOp() if op == "none" else edge_op(op, c) for _, _, op in self.edges)  # = ZERO's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_cell(x, self.nodes, [(j, i, op) for (j, i, _), op, live in zip(self.edges, self.ops, self.live)
                                        if live], self.computed)


def run_cell(x: torch.Tensor, nodes: int, steps: Sequence[tuple[int, int, nn.Module]],
             computed: bool = False) -> torch.Tensor:
    """A cell's DAG: each ``(to, from, module)`` step (the edges that run, in order) adds its output into node
    ``to``; the last node is the output. A node no edge feeds is zeros (NAS-Bench-201): with ``computed``
    edges it is ``x * 0``, as NAS-Bench-201's ``none`` computes it, so that what follows still depends on the
    input (a constant zeros tensor would let a graph runtime fold the rest of the network away, and the
    network that ran would not be the one its benchmarks timed)."""
    def zeros() -> torch.Tensor:
        return x * 0.0 if computed else torch.zeros_like(x)

    states: list[torch.Tensor | None] = [x] + [None] * (nodes - 1)
    for j, i, module in steps:
        src = states[i]
        y = module(src if src is not None else zeros())
        states[j] = y if states[j] is None else states[j] + y
    out = states[-1]
    return out if out is not None else zeros()


class CellNetwork(nn.Module):
    def __init__(self, arch: CellArch):
        super().__init__()
        sp = arch.space
        r, c0 = arch.resolution, sp.channels[0]
        layers: list[nn.Module] = list(LayerDesc("conv", sp.in_channels, c0, r, kernel=3, act="none").build())
        for s, c in enumerate(sp.channels):
            if s:
                layers.append(LayerDesc("resblock", sp.channels[s - 1], c, r, kernel=3, stride=2).build())
            layers += [Cell(sp, arch.ops, c) for _ in range(sp.cells_per_stage)]
        head = list(LayerDesc("poolhead", sp.channels[-1], sp.num_classes, 1).build())
        self.body = nn.Sequential(*layers, *head)
        # a cell with no path outputs zeros, so the network's output is the head applied to zeros of the
        # last stage's shape, whatever the input: computed so, the network costs what it is priced at
        # pruned: no path to the output, so the network is the head on zeros; computed: everything still runs
        self.constant = not any(arch.live) and sp.dead_edges == "pruned"
        self._head_from = len(layers)
        self._last = stage_shapes(sp, arch.resolution)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.constant:
            c, r = self._last
            y = torch.zeros(x.shape[0], c, r, r, dtype=x.dtype, device=x.device)
            return self.body[self._head_from:](y)
        return self.body(x)

