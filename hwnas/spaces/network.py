"""The network-level (macro) space kind: a network of stages, each stage a stack of one layer type with a
connection pattern, searched per stage (the guides' ``NetworkSearchSpace`` and ``ArchitectureSpec``).

Per stage the genes are: the layer type (``conv``: conv-BN-act; ``dwsep``: depthwise-separable; ``bottleneck``:
ResNet's; ``mbconv``: inverted residual, optional squeeze-excite; ``attention``: a MobileViT-style block, every
position of the feature map a token), the depth, the width (from the stage's list), the kernel, the expansion
and the connection pattern (``sequential``, ``residual``, ``dense``); the number of stages is a gene too, and
the input resolution. Space files say ``"kind": "network"``.

Underneath, an arch compiles to the guides' *layers and connections*: a list of nodes executed in
topological order, each a block with one input or a combination (``add``, ``concat``) of earlier nodes
(:meth:`NetworkArch.graph`). The shape rules, so that every draw is a valid network:

- A stage's first layer takes the previous stage's output, carries the stage's stride and changes the
  width; every later layer keeps the stage's resolution.
- ``sequential``: each layer takes the one before. ``residual``: the same, plus an identity skip (an ``add``)
  around each later layer of a type with no shortcut of its own (``conv``, ``dwsep``); ``bottleneck``,
  ``mbconv`` and ``attention`` blocks add their input themselves wherever the shape allows, in any pattern.
  ``dense``: each later layer takes the channel concatenation of every earlier layer's output in the stage,
  and the stage ends in a 1x1 ``conv`` transition from that concatenation back to the stage's width.
- Genes a layer type does not read are set to their first choice (``expand`` for ``conv``, ``dwsep`` and
  ``attention``), and a stage of depth 1, or a ``residual`` stage of a type with its own shortcut, is
  ``sequential`` (the same network): one network, one arch id.

``expand`` means, per type: ``mbconv``'s inner width is ``expand`` x its input; ``bottleneck``'s inner width
is its width / ``expand`` (ResNet: 4). ``attention``'s token dimension is the stage's width with
``attention_heads`` heads. Latency is the sum of the blocks' LUT entries (``layers()``), calibrated.
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
from hwnas.spaces.blocks import ACTIVATIONS, LayerDesc, make_divisible
from hwnas.spaces.base import (arch_id, KindParts, SPACES, ArchError, SpaceError, as_rng, check_fields, plain_fields,
                                read_ints, read_number, read_string,
                                at_resolutions, check_arch_space, checked_resolutions, distinct_samples, read_fields)

LAYER_TYPES = ("conv", "dwsep", "bottleneck", "mbconv", "attention")
CONNECTIONS = ("sequential", "residual", "dense")
USES_EXPAND = ("bottleneck", "mbconv")
OWN_SHORTCUT = ("bottleneck", "mbconv", "attention")
GENES_PER_STAGE = 6  # type, depth, width, kernel, expand, connection


@SPACES.register("network")
@dataclass(frozen=True)
class NetworkSpace:
    """A network-level space: up to ``len(strides)`` stages, each with its own choices."""

    name: str
    stage_counts: tuple[int, ...]                 # how many stages a network may have
    strides: tuple[int, ...]                      # the first layer's stride, per stage position
    widths: tuple[tuple[int, ...], ...]           # candidate widths per stage position
    layer_types: tuple[tuple[str, ...], ...]      # candidate layer types per stage position
    depths: tuple[int, ...] = (1, 2, 3)
    kernels: tuple[int, ...] = (3, 5)
    expands: tuple[int, ...] = (2, 4)
    connections: tuple[str, ...] = CONNECTIONS
    resolutions: tuple[int, ...] = (224,)
    stem_width: int = 16
    stem_stride: int = 2
    head_width: int = 1024
    act: str = "hswish"
    se: bool = False                              # mbconv blocks with squeeze-excite
    attention_heads: int = 2
    in_channels: int = 3
    num_classes: int = 1000
    description: str = ""
    kind: str = "network"
    # no supernet (a proxy scores it: docs/spaces.md); its fast path prices a stage at a time
    parts = KindParts(latency_predictor="hwnas.latency.network_predict:NetworkLatencyPredictor")

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "NetworkSpace":
        def strings(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise SpaceError(f"{where} must be a non-empty list of names, got {value!r:.60}")
            return tuple(value)

        def per_stage(value: Any, where: str, read: Any) -> tuple:
            if not isinstance(value, list) or not value:
                raise SpaceError(f"{where} must list one choice list per stage position, got {value!r:.60}")
            if not isinstance(value[0], list):  # one list for every stage position
                value = [value] * len(data.get("strides", [value]))
            return tuple(read(v, f"{where}[{i}]") for i, v in enumerate(value))

        def convert(name: str, value: Any, where: str) -> Any:
            if name in ("name", "description", "kind", "act"):
                return read_string(value, where)
            if name == "se":
                if not isinstance(value, bool):
                    raise SpaceError(f"{where} must be true or false, got {value!r:.40}")
                return value
            if name == "widths":
                return per_stage(value, where, read_ints)
            if name == "layer_types":
                return per_stage(value, where, strings)
            if name == "connections":
                return strings(value, where)
            if name in ("stage_counts", "strides", "depths", "kernels", "expands", "resolutions"):
                return read_ints(value, where)
            return read_number(value, int, where)

        return read_fields(cls, data, source, ("name", "kind", "stage_counts", "strides", "widths", "layer_types"),
                           convert)

    def validate(self, source: str = "space") -> None:
        def err(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if self.kind != "network":
            raise err(f"field 'kind' must be 'network' for a network space, got {self.kind!r}")
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise err(f"field 'name' must be a non-empty word of letters, digits, '-', '_' or '.', got {self.name!r}")
        n = len(self.strides)
        if not 1 <= n <= 12 or any(s not in (1, 2) for s in self.strides):
            raise err(f"field 'strides' must list 1..12 strides of 1 or 2, one per stage position, got "
                      f"{list(self.strides)}")
        if len(self.widths) != n or len(self.layer_types) != n:
            raise err(f"fields 'widths' and 'layer_types' must list one choice list per stage position ({n}, as "
                      f"'strides'), got {len(self.widths)} and {len(self.layer_types)}")
        if any(not 1 <= c <= n for c in self.stage_counts) or len(set(self.stage_counts)) != len(self.stage_counts):
            raise err(f"field 'stage_counts' must list distinct stage counts 1..{n}, got {list(self.stage_counts)}")
        if self.attention_heads < 1:  # before the widths are divided by it
            raise err(f"field 'attention_heads' must be a whole number >= 1, got {self.attention_heads}")
        for p, (ws, ts) in enumerate(zip(self.widths, self.layer_types)):
            if any(w < 1 or w > 4096 for w in ws) or len(set(ws)) != len(ws):
                raise err(f"field 'widths'[{p}] must list distinct widths 1..4096, got {list(ws)}")
            bad = [t for t in ts if t not in LAYER_TYPES]
            if bad or len(set(ts)) != len(ts):
                raise err(f"field 'layer_types'[{p}] must list distinct types from {list(LAYER_TYPES)}, got {list(ts)}")
            if "attention" in ts and any(w % self.attention_heads for w in ws):
                raise err(f"stage {p} may be attention: its widths {list(ws)} must be multiples of "
                          f"attention_heads {self.attention_heads}")
        for fname, values, lo, hi in (("depths", self.depths, 1, 20), ("kernels", self.kernels, 1, 11),
                                      ("expands", self.expands, 1, 12)):
            if any(not lo <= v <= hi for v in values) or len(set(values)) != len(values):
                raise err(f"field {fname!r} must list distinct values {lo}..{hi}, got {list(values)}")
        if any(k % 2 == 0 for k in self.kernels):
            raise err(f"field 'kernels' must list odd sizes (same padding), got {list(self.kernels)}")
        bad = [c for c in self.connections if c not in CONNECTIONS]
        if bad or not self.connections or len(set(self.connections)) != len(self.connections):
            raise err(f"field 'connections' must list distinct patterns from {list(CONNECTIONS)}, got "
                      f"{list(self.connections)}")
        if self.act not in ACTIVATIONS or self.act == "none":
            raise err(f"field 'act' must be one of {sorted(a for a in ACTIVATIONS if a != 'none')}, got {self.act!r}")
        if self.stem_width < 1 or self.head_width < 1 or self.stem_stride not in (1, 2) or self.attention_heads < 1:
            raise err("stem_width, head_width and attention_heads must be >= 1 and stem_stride 1 or 2")
        if self.in_channels < 1 or self.num_classes < 2:
            raise err("in_channels must be >= 1 and num_classes >= 2")
        if not self.resolutions or any(r < 4 or r > 1024 for r in self.resolutions):
            raise err(f"field 'resolutions' must list sizes 4..1024, got {list(self.resolutions)}")

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "NetworkSpace":
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(jsonio.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def max_stages(self) -> int:
        return len(self.strides)

    # -- latency keys ----------------------------------------------------------
    def layers(self, arch: "NetworkArch") -> list[LayerDesc]:
        return [node.desc for node in arch.graph()]

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        """Every distinct block any arch of the space can contain at ``resolutions`` (the keys a full LUT
        needs): each stage position's blocks for every input width the stage before can give it."""
        seen: dict[str, LayerDesc] = {}
        for res in checked_resolutions(self, resolutions):
            r = stage_res = _out(res, self.stem_stride)
            seen.setdefault((d := self._stem(res)).key, d)
            prev_widths: tuple[int, ...] = (self.stem_width,)
            for p in range(self.max_stages):
                r = _out(stage_res, self.strides[p])
                for cin in prev_widths:
                    for stage in self._stage_choices(p):
                        for node in compile_stage(self, stage, cin, stage_res, self.strides[p], 0, -1)[0]:
                            seen.setdefault(node.desc.key, node.desc)
                if p + 1 in self.stage_counts:
                    for w in self.widths[p]:
                        seen.setdefault((d := self._head(w, r)).key, d)
                prev_widths, stage_res = self.widths[p], r
        return list(seen.values())

    def _stage_choices(self, p: int) -> Iterable["Stage"]:
        """Stages that together hold every block stage position ``p`` can have: the deepest residual stage
        (its later layers and adds; sequential's are a subset), and a dense stage of each depth (its
        concatenations and its transition)."""
        for t in self.layer_types[p]:
            for w in self.widths[p]:
                for k in self.kernels:
                    for e in (self.expands if t in USES_EXPAND else self.expands[:1]):
                        yield Stage(t, max(self.depths), w, k, e, "residual")
                        if "dense" in self.connections:
                            yield from (Stage(t, d, w, k, e, "dense") for d in self.depths if d > 1)

    def _stem(self, res: int) -> LayerDesc:
        return LayerDesc("conv", self.in_channels, self.stem_width, res, kernel=3, stride=self.stem_stride, act=self.act)

    def _head(self, cin: int, res: int) -> LayerDesc:
        return LayerDesc("head", cin, self.num_classes, res, mid=self.head_width, act=self.act)

    def size(self) -> int:
        per_stage = [sum((len(self.expands) if t in USES_EXPAND else 1) for t in ts) * len(ws) * len(self.kernels)
                     * (1 + (len(self.depths) - (1 in self.depths)) * len(self.connections))
                     for ts, ws in zip(self.layer_types, self.widths)]
        return len(self.resolutions) * sum(int(np.prod(per_stage[:n])) for n in self.stage_counts)

    # -- architectures -------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> "NetworkArch":
        rng = as_rng(rng)
        n = rng.choice(self.stage_counts)
        stages = tuple(Stage(rng.choice(self.layer_types[p]), rng.choice(self.depths), rng.choice(self.widths[p]),
                             rng.choice(self.kernels), rng.choice(self.expands), rng.choice(self.connections))
                       for p in range(n))
        return NetworkArch(self, rng.choice(self.resolutions), stages).canonical()

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["NetworkArch"]:
        return distinct_samples(self.sample, n, as_rng(rng), exclude)

    def largest(self) -> "NetworkArch":
        n = max(self.stage_counts)
        heavy = ("attention", "bottleneck", "mbconv", "conv", "dwsep")
        return NetworkArch(self, max(self.resolutions), tuple(
            Stage(next(t for t in heavy if t in self.layer_types[p]), max(self.depths), max(self.widths[p]),
                  max(self.kernels), max(self.expands), "dense" if "dense" in self.connections else self.connections[0])
            for p in range(n))).canonical()

    def smallest(self) -> "NetworkArch":
        n = min(self.stage_counts)
        light = ("dwsep", "conv", "mbconv", "bottleneck", "attention")
        return NetworkArch(self, min(self.resolutions), tuple(
            Stage(next(t for t in light if t in self.layer_types[p]), min(self.depths), min(self.widths[p]),
                  min(self.kernels), min(self.expands), self.connections[0]) for p in range(n))).canonical()

    def arch_from_dict(self, data: Any, source: str = "arch") -> "NetworkArch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_arch_space(data, self, {"ops", "kernels", "expands", "depths", "width"}, source)
        check_fields(data, {"space", "resolution", "stages"}, ("resolution", "stages"), source, ArchError)
        raw = data["stages"]
        if not isinstance(raw, list):
            raise ArchError(f"{source}: field 'stages' must be a list of stage objects")
        keys = {"type", "depth", "width", "kernel", "expand", "connection"}
        stages = []
        for i, s in enumerate(raw):
            where = f"{source}: stages[{i}]"
            if not isinstance(s, dict):
                raise ArchError(f"{where} must be an object with {sorted(keys)}")
            check_fields(s, keys, tuple(sorted(keys)), where, ArchError)
            if not isinstance(s["type"], str) or not isinstance(s["connection"], str):
                raise ArchError(f"{where}: 'type' and 'connection' must be names")
            stages.append(Stage(s["type"], *(read_number(s[k], int, f"{where}: field {k!r}", ArchError)
                                             for k in ("depth", "width", "kernel", "expand")), s["connection"]))
        arch = NetworkArch(self, read_number(data["resolution"], int, f"{source}: field 'resolution'", ArchError),
                           tuple(stages))
        arch.validate(source)
        return arch

    def load_arch(self, path: str | Path) -> "NetworkArch":
        return self.arch_from_dict(jsonio.loads_file(path, ArchError, "architecture file"), source=str(path))

    def _choices(self) -> list[tuple]:
        """The value list of every gene, in gene order."""
        out: list[tuple] = [self.resolutions, self.stage_counts]
        for p in range(self.max_stages):
            out += [self.layer_types[p], self.depths, self.widths[p], self.kernels, self.expands, self.connections]
        return out

    def gene_upper_bounds(self) -> list[int]:
        return [len(c) - 1 for c in self._choices()]

    def from_genes(self, genes: Iterable[int]) -> "NetworkArch":
        g, ch = list(genes), self._choices()
        n = ch[1][g[1]]
        stages = tuple(Stage(*(ch[2 + GENES_PER_STAGE * p + j][g[2 + GENES_PER_STAGE * p + j]]
                               for j in range(GENES_PER_STAGE))) for p in range(n))
        return NetworkArch(self, ch[0][g[0]], stages).canonical()

    def encode_many(self, archs: Sequence["NetworkArch"]) -> np.ndarray:
        """One-hot per gene; a stage the arch does not have is all zeros."""
        sizes = [len(c) for c in self._choices()]
        offsets = np.cumsum([0] + sizes[:-1])
        out = np.zeros((len(archs), sum(sizes)))
        for n, a in enumerate(archs):
            g = a.genes()
            active = 2 + GENES_PER_STAGE * len(a.stages)
            for i in range(active):
                out[n, offsets[i] + g[i]] = 1.0
        return out

    @property
    def encoding_size(self) -> int:
        return sum(len(c) for c in self._choices())


@dataclass(frozen=True)
class Stage:
    """One stage's choices (see the module's docstring for what each means per layer type)."""

    type: str
    depth: int
    width: int
    kernel: int
    expand: int
    connection: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "depth": self.depth, "width": self.width, "kernel": self.kernel,
                "expand": self.expand, "connection": self.connection}


@dataclass(frozen=True)
class Node:
    """One node of the layers-and-connections graph: a block applied to the combination of its inputs
    (node indices; -1 is the network's input). ``desc.op`` ``add``/``concat`` combine several inputs."""

    desc: LayerDesc
    inputs: tuple[int, ...]


def _out(res: int, stride: int) -> int:
    return -(-res // stride)


def compile_stage(space: NetworkSpace, st: Stage, cin: int, res: int, stride: int, start: int,
                  first_input: int) -> tuple[list[Node], int]:
    """The nodes of one stage numbered from ``start`` (its first layer reading node ``first_input``) and the
    index of the stage's output node."""
    nodes: list[Node] = []

    def block(c_in: int, r: int, s: int) -> LayerDesc:
        mid = (make_divisible(c_in * st.expand) if st.type == "mbconv" else
               max(8, make_divisible(st.width / st.expand)) if st.type == "bottleneck" else
               st.width if st.type == "attention" else 0)
        return LayerDesc(st.type, c_in, st.width, r, kernel=st.kernel, stride=s, mid=mid,
                         se=space.se and st.type == "mbconv", act=space.act,
                         heads=space.attention_heads if st.type == "attention" else 0)

    def put(desc: LayerDesc, inputs: tuple[int, ...]) -> int:
        nodes.append(Node(desc, inputs))
        return start + len(nodes) - 1

    r = _out(res, stride)
    outs = [put(block(cin, res, stride), (first_input,))]
    last = outs[0]
    for i in range(1, st.depth):
        if st.connection == "dense":
            src = outs[0] if len(outs) == 1 else put(
                LayerDesc("concat", st.width * len(outs), st.width * len(outs), r, act="none"), tuple(outs))
            outs.append(put(block(st.width * len(outs), r, 1), (src,)))
            last = outs[-1]
        else:
            y = put(block(st.width, r, 1), (last,))
            if st.connection == "residual" and st.type not in OWN_SHORTCUT:
                y = put(LayerDesc("add", st.width, st.width, r, act="none"), (last, y))
            last = y
    if st.connection == "dense" and st.depth > 1:
        cat = put(LayerDesc("concat", st.width * st.depth, st.width * st.depth, r, act="none"), tuple(outs))
        last = put(LayerDesc("conv", st.width * st.depth, st.width, r, kernel=1, act=space.act), (cat,))
    return nodes, last


@dataclass(frozen=True)
class NetworkArch:
    """One network of a network space: its input resolution and its stages' choices."""

    space: NetworkSpace = field(compare=False, repr=False)
    resolution: int
    stages: tuple[Stage, ...]

    def validate(self, source: str = "arch") -> None:
        sp = self.space
        if self.resolution not in sp.resolutions:
            raise ArchError(f"{source}: resolution {self.resolution} is not allowed; choose from {list(sp.resolutions)}")
        if len(self.stages) not in sp.stage_counts:
            raise ArchError(f"{source}: {len(self.stages)} stages; this space allows {list(sp.stage_counts)}")
        for p, st in enumerate(self.stages):
            for name, value, allowed in (("type", st.type, sp.layer_types[p]), ("depth", st.depth, sp.depths),
                                         ("width", st.width, sp.widths[p]), ("kernel", st.kernel, sp.kernels),
                                         ("expand", st.expand, sp.expands),
                                         ("connection", st.connection, sp.connections)):
                if value not in allowed:
                    raise ArchError(f"{source}: stages[{p}].{name} = {value!r} is not allowed; choose from "
                                    f"{list(allowed)}")

    def canonical(self) -> "NetworkArch":
        """The same network with the genes it does not read at their first choice (see the module)."""
        sp = self.space
        def wiring(s: Stage) -> str:
            same = s.depth == 1 or (s.connection == "residual" and s.type in OWN_SHORTCUT)
            return "sequential" if same and "sequential" in sp.connections else sp.connections[0] if s.depth == 1 \
                else s.connection

        stages = tuple(Stage(s.type, s.depth, s.width, s.kernel, s.expand if s.type in USES_EXPAND else sp.expands[0],
                             wiring(s)) for s in self.stages)
        return self if stages == self.stages else NetworkArch(sp, self.resolution, stages)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "resolution": self.resolution, "stages": [s.to_dict() for s in self.stages]}

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), sort_keys=True)

    @cached_property
    def id(self) -> str:
        return arch_id(self)

    @property
    def summary(self) -> str:
        """Stage by stage: type x depth, width, connection's first letter (``mbconv2x32r``)."""
        return "stages " + " ".join(f"{s.type}{s.depth}x{s.width}{s.connection[0]}" for s in self.stages)

    def describe(self) -> str:
        return f"resolution {self.resolution}, stages {[s.to_dict() for s in self.stages]}"

    def report_fields(self) -> dict[str, Any]:
        return {"stages": len(self.stages), "layer_types": [s.type for s in self.stages]}

    def graph(self) -> list[Node]:
        """The layers and connections, in topological order: stem, each stage's nodes, head."""
        sp = self.space
        nodes = [Node(sp._stem(self.resolution), (-1,))]
        res, cin, last = _out(self.resolution, sp.stem_stride), sp.stem_width, 0
        for p, st in enumerate(self.stages):
            stage, last = compile_stage(sp, st, cin, res, sp.strides[p], len(nodes), last)
            nodes += stage
            res, cin = _out(res, sp.strides[p]), st.width
        nodes.append(Node(sp._head(cin, res), (last,)))
        return nodes

    def layers(self) -> list[LayerDesc]:
        return [n.desc for n in self.graph()]

    # -- variation: every result is a valid network (the genes are; shapes follow the rules) --------
    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "NetworkArch":
        """Each gene redrawn with probability ``prob``, then, with the same probability each, a topology move:
        add or remove a layer in a stage, rewire a stage (another connection pattern), add or drop a stage."""
        rng, sp = as_rng(rng), self.space
        genes = self.genes()
        ub = sp.gene_upper_bounds()
        genes = [rng.randint(0, u) if rng.random() < prob else g for g, u in zip(genes, ub)]
        arch = sp.from_genes(genes)
        stages = list(arch.stages)
        if stages and rng.random() < prob:  # add or remove a layer
            p = rng.randrange(len(stages))
            i = sp.depths.index(stages[p].depth) + rng.choice((-1, 1))
            if 0 <= i < len(sp.depths):
                stages[p] = _with(stages[p], depth=sp.depths[i])
        if stages and rng.random() < prob:  # rewire
            p = rng.randrange(len(stages))
            stages[p] = _with(stages[p], connection=rng.choice(sp.connections))
        if rng.random() < prob:  # add or drop a stage
            n = rng.choice(sp.stage_counts)
            while len(stages) < n:
                q = len(stages)
                stages.append(Stage(rng.choice(sp.layer_types[q]), rng.choice(sp.depths), rng.choice(sp.widths[q]),
                                    rng.choice(sp.kernels), rng.choice(sp.expands), rng.choice(sp.connections)))
            stages = stages[:n]
        return NetworkArch(sp, arch.resolution, tuple(stages)).canonical()

    def crossover(self, other: "NetworkArch", rng: random.Random | int | None = None) -> "NetworkArch":
        """Stage by stage from either parent (a stage position only one has comes with the stage count)."""
        rng = as_rng(rng)
        n = len(self.stages) if rng.random() < 0.5 else len(other.stages)
        pool = [(a, b) for a, b in zip(self.stages + (None,) * n, other.stages + (None,) * n)][:n]
        stages = tuple((a if b is None else b if a is None else (a if rng.random() < 0.5 else b)) for a, b in pool)
        res = self.resolution if rng.random() < 0.5 else other.resolution
        return NetworkArch(self.space, res, stages).canonical()

    def scaled(self, depth: float, width: float, resolution: float) -> "NetworkArch":
        """Compound scaling (EfficientNet): every stage's depth x ``depth``, width x ``width`` and the input
        resolution x ``resolution``, each snapped to the nearest value the space allows (ties upward), so the
        LUT that covers the space prices the result."""
        sp = self.space
        stages = tuple(_with(s, depth=_nearest(sp.depths, s.depth * depth), width=_nearest(sp.widths[p], s.width * width))
                       for p, s in enumerate(self.stages))
        return NetworkArch(sp, _nearest(sp.resolutions, self.resolution * resolution), stages).canonical()

    def genes(self) -> list[int]:
        sp = self.space
        g = [sp.resolutions.index(self.resolution), sp.stage_counts.index(len(self.stages))]
        for p in range(sp.max_stages):
            if p < len(self.stages):
                s = self.stages[p]
                g += [sp.layer_types[p].index(s.type), sp.depths.index(s.depth), sp.widths[p].index(s.width),
                      sp.kernels.index(s.kernel), sp.expands.index(s.expand), sp.connections.index(s.connection)]
            else:
                g += [0] * GENES_PER_STAGE
        return g

    def encode(self) -> list[float]:
        return self.space.encode_many([self])[0].tolist()

    def build(self) -> nn.Module:
        return NetworkGraphModel(self.graph())


def _nearest(choices: Sequence[int], target: float) -> int:
    """The allowed value closest to ``target`` (the larger of two equally close)."""
    return min(choices, key=lambda v: (abs(v - target), -v))


def _with(stage: Stage, **changes: Any) -> Stage:
    d = stage.to_dict()
    d.update(changes)
    return Stage(**d)


class NetworkGraphModel(nn.Module):
    """Runs the nodes in order: each block on its input, ``add`` summing its inputs, ``concat`` joining
    them along the channels. Every block is the module its descriptor builds (the one the LUT timed)."""

    def __init__(self, nodes: Sequence[Node]):
        super().__init__()
        self.inputs = [n.inputs for n in nodes]
        self.ops = [n.desc.op for n in nodes]
        self.blocks = nn.ModuleList(nn.Identity() if n.desc.op in ("add", "concat") else n.desc.build() for n in nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for op, inputs, block in zip(self.ops, self.inputs, self.blocks):
            args = [x if i < 0 else outs[i] for i in inputs]
            if op == "add":
                outs.append(args[0] + args[1])
            elif op == "concat":
                outs.append(torch.cat(args, 1))
            else:
                outs.append(block(args[0]))
        return outs[-1]
