"""The cell-based (micro) search space, NAS-Bench-201 style: one cell, a small DAG, repeated to build the network.

A cell has ``nodes`` nodes (4 by default); node 0 is the cell's input and every later node is the sum
of one operation per earlier node (an *edge*: 6 edges for 4 nodes); the last node is the output. Each
edge is one of ``none`` (no connection), ``skip``, ``conv1x1``, ``conv3x3`` (ReLU-conv-BN) or
``avgpool3x3``. The network: a 3x3 stem, ``cells_per_stage`` cells per stage, a residual reduction
block (stride 2) between stages, BN-ReLU, global pooling, a linear classifier. A cell whose output
node is reached by no path gives zeros, as in NAS-Bench-201.

Space files say ``"kind": "cell"``; ``hwnas.space.get_space`` reads them. This is the first slice of
issue 15: sampling, variation, encoding and the networks themselves (training, proxies, the reference
bench work on them); the latency model (LUT keys per edge op) is not built yet, and asking a cell arch
for its LUT layers says so.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from hwnas import jsonio
from hwnas.space import ArchError, SpaceError, _check_fields, _number, _rng, _string, at_resolutions, distinct_samples, read_fields

OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")


@dataclass(frozen=True)
class CellSpace:
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

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "CellSpace":
        def convert(name: str, value: Any, where: str) -> Any:
            if name in ("name", "description", "kind"):
                return _string(value, where)
            if name == "ops":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SpaceError(f"{where} must be a list of operation names from {list(OPS)}")
                return tuple(value)
            if name in ("channels", "resolutions"):
                if not isinstance(value, list):
                    raise SpaceError(f"{where} must be a list of whole numbers, got {value!r}")
                return tuple(_number(v, int, f"{where}[{i}]") for i, v in enumerate(value))
            return _number(value, int, where)

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
        reduction = 2 ** (len(self.channels) - 1)
        if not self.resolutions or min(self.resolutions) < max(8, reduction):
            raise err(f"field 'resolutions' must list sizes >= {max(8, reduction)} (the total stride "
                      f"{reduction}), got {list(self.resolutions)}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise err("in_channels must be >= 1 and num_classes >= 2")

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "CellSpace":
        return at_resolutions(self, resolutions, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(jsonio.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(to, from) node pairs in gene order: (1,0), (2,0), (2,1), (3,0), ..."""
        return [(j, i) for j in range(1, self.nodes) for i in range(j)]

    # -- architectures -------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> "CellArch":
        rng = _rng(rng)
        return CellArch(self, rng.choice(self.resolutions), tuple(rng.choice(self.ops) for _ in self.edges))

    def sample_distinct(self, n: int, rng: random.Random | int | None = None,
                        exclude: Iterable[str] = ()) -> list["CellArch"]:
        return distinct_samples(self.sample, n, _rng(rng), exclude)

    def largest(self) -> "CellArch":
        big = "conv3x3" if "conv3x3" in self.ops else self.ops[-1]
        return CellArch(self, max(self.resolutions), (big,) * len(self.edges))

    def smallest(self) -> "CellArch":
        small = "none" if "none" in self.ops else self.ops[0]
        return CellArch(self, min(self.resolutions), (small,) * len(self.edges))

    def arch_from_dict(self, data: Any, source: str = "arch") -> "CellArch":
        if not isinstance(data, dict):
            raise ArchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        _check_fields(data, {"space", "resolution", "ops"}, ("resolution", "ops"), source, ArchError)
        if data.get("space", self.name) != self.name:
            raise ArchError(f"{source}: arch is for space {data['space']!r}, not {self.name!r}")
        ops = data["ops"]
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise ArchError(f"{source}: field 'ops' must list {len(self.edges)} operation names")
        arch = CellArch(self, _number(data["resolution"], int, f"{source}: field 'resolution'", ArchError), tuple(ops))
        arch.validate(source)
        return arch

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
        return hashlib.sha256(f"{self.space.digest}:{self.to_json()}".encode()).hexdigest()[:12]

    @property
    def connected(self) -> bool:
        """Whether some path of non-``none`` edges leads from the input to the output node."""
        reach = {0}
        for (j, i), op in zip(self.space.edges, self.ops):
            if op != "none" and i in reach:
                reach.add(j)
        return self.space.nodes - 1 in reach

    def layers(self) -> list:
        raise SpaceError(f"space {self.space.name!r} (kind cell) has no latency model yet: its LUT keys per edge "
                         f"operation are not built (issue 15); use a macro space such as 'demo' for latency")

    def mutate(self, rng: random.Random | int | None = None, prob: float = 0.1) -> "CellArch":
        rng, sp = _rng(rng), self.space
        res = rng.choice(sp.resolutions) if rng.random() < prob else self.resolution
        return CellArch(sp, res, tuple(rng.choice(sp.ops) if rng.random() < prob else o for o in self.ops))

    def crossover(self, other: "CellArch", rng: random.Random | int | None = None) -> "CellArch":
        rng = _rng(rng)
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
class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))


def edge_op(name: str, c: int) -> nn.Module:
    if name == "skip":
        return nn.Identity()
    if name == "conv1x1":
        return ReLUConvBN(c, c, 1)
    if name == "conv3x3":
        return ReLUConvBN(c, c, 3)
    if name == "avgpool3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"no module for edge operation {name!r}")


class Cell(nn.Module):
    def __init__(self, space: CellSpace, ops: Sequence[str], c: int):
        super().__init__()
        self.nodes = space.nodes
        self.edges = [(j, i, op) for (j, i), op in zip(space.edges, ops) if op != "none"]
        self.ops = nn.ModuleList(edge_op(op, c) for _, _, op in self.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: list[torch.Tensor | None] = [x] + [None] * (self.nodes - 1)
        for (j, i, _), op in zip(self.edges, self.ops):
            if states[i] is not None:
                y = op(states[i])
                states[j] = y if states[j] is None else states[j] + y
        out = states[-1]
        return out if out is not None else torch.zeros_like(x)  # no path to the output: zeros (NAS-Bench-201)


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual block between stages: two 3x3 ReLU-conv-BN (the first with stride 2) plus
    an average-pooled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a, self.b = ReLUConvBN(cin, cout, 3, 2), ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class CellNetwork(nn.Module):
    def __init__(self, arch: CellArch):
        super().__init__()
        sp = arch.space
        c0 = sp.channels[0]
        layers: list[nn.Module] = [nn.Conv2d(sp.in_channels, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0)]
        for s, c in enumerate(sp.channels):
            if s:
                layers.append(ReductionBlock(sp.channels[s - 1], c))
            layers += [Cell(sp, arch.ops, c) for _ in range(sp.cells_per_stage)]
        layers += [nn.BatchNorm2d(sp.channels[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(sp.channels[-1], sp.num_classes)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
