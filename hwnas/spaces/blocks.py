"""Torch building blocks and the layer descriptors that name them.

A :class:`LayerDesc` is the one definition of a block: its canonical key is the
LUT key, ``build()`` is the module a profiler times in isolation, and
``build_model`` composes exactly those modules into the network. So the LUT, the
predictor and the exported model cannot disagree about what a block is.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "swish": nn.SiLU,
    "none": nn.Identity,  # a conv without activation (the cell stem), ops that have none (pooling, add)
}
# conv/mbconv/head: the macro (MobileNetV3) space; rcb/avgpool/add/resblock/poolhead: the cell space.
OPS = ("conv", "mbconv", "head", "rcb", "avgpool", "add", "resblock", "poolhead")
STRIDED = ("conv", "mbconv", "rcb", "avgpool", "resblock")  # keys carry kernel and stride
WITH_MID = ("mbconv", "head")                                 # keys carry the inner width
HEADS = ("head", "poolhead")                                  # output [1, cout]
SE_REDUCTION = 4


@dataclass(frozen=True)
class BlockType:
    """A block type a kind brings beside the built-in ones (:data:`OPS`): how a descriptor of it builds its
    module and counts its cost. Registered in :data:`BLOCK_TYPES` by name (the descriptor's ``op``), built-in
    kinds in code and plugins under the ``hwnas.blocks`` entry-point group, so every path that rebuilds a
    block from its LUT key (fresh measuring processes, the agent's host-side export, bundles) finds it.

    ``strided``/``with_mid``/``with_heads``: whether its key carries kernel and stride, the inner width, the
    attention heads; ``head``: its output is ``[1, cout]`` (a classifier)."""

    build: Callable[["LayerDesc"], nn.Module]
    macs: Callable[["LayerDesc"], int]
    params: Callable[["LayerDesc"], int]
    strided: bool = True
    with_mid: bool = False
    with_heads: bool = False
    head: bool = False
    activation_elems: Callable[["LayerDesc"], int] | None = None


def _block_types():
    from hwnas.core.registry import Registry  # the registry module imports nothing of spaces: no cycle

    reg = Registry("block type", "hwnas.blocks", ValueError)
    for name in ("dwsep", "bottleneck", "attention", "concat"):  # the network kind's (hwnas.spaces.network_blocks)
        reg.register(name, f"hwnas.spaces.network_blocks:{name.upper()}")
    for name in ("sepconv", "dilconv", "maxpool", "factreduce", "gaphead"):  # the DARTS kind's
        reg.register(name, f"hwnas.spaces.darts_blocks:{name.upper()}")
    reg.register("zero", "hwnas.spaces.cells:ZERO")  # a computed cell edge's none (x * 0)
    return reg


BLOCK_TYPES = _block_types()
_LOADED: dict[str, BlockType] = {}


def block_type(op: str) -> BlockType | None:
    """The registered :class:`BlockType` of ``op``; None for a built-in op (or an unknown one)."""
    if op in OPS:
        return None
    if op not in _LOADED:
        if op not in BLOCK_TYPES:
            return None
        found = BLOCK_TYPES.get(op)
        if not isinstance(found, BlockType):
            raise ValueError(f"block type {op!r} is registered as {type(found).__name__}, not a BlockType")
        _LOADED[op] = found
    return _LOADED[op]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` (never down by more than 10 %), as MobileNet does."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def se_channels(channels: int) -> int:
    return make_divisible(channels // SE_REDUCTION)


@dataclass(frozen=True)
class LayerDesc:
    """A block with everything that decides its latency, including its input size.

    ``op``: ``conv`` (conv-BN-act; the stem and the final 1x1 expand), ``mbconv``
    (inverted residual: optional 1x1 expand, depthwise, optional squeeze-excite,
    1x1 project, residual when shapes allow) or ``head`` (global pool, 1x1 to
    ``mid`` + act, linear to ``cout`` classes). The cell space adds ``rcb``
    (ReLU-conv-BN, an edge), ``avgpool`` (an edge), ``add`` (one more input summed
    into a cell node), ``resblock`` (NAS-Bench-201's residual reduction block) and
    ``poolhead`` (BN-ReLU, global pool, linear).
    """

    op: str
    cin: int
    cout: int
    res: int
    kernel: int = 1
    stride: int = 1
    mid: int = 0
    se: bool = False
    act: str = "relu"
    heads: int = 0  # attention heads (block types with_heads only)

    def __post_init__(self) -> None:
        if self.op not in OPS and block_type(self.op) is None:
            raise ValueError(f"unknown layer op {self.op!r}; expected one of {OPS + tuple(BLOCK_TYPES.names())} "
                             f"(a plugin registers more under the 'hwnas.blocks' entry-point group)")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}; expected one of {sorted(ACTIVATIONS)}")
        for name in ("cin", "cout", "res", "kernel", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"layer {name} must be >= 1, got {getattr(self, name)}")
        if (self.op in ("mbconv", "head") or self._type_says("with_mid")) and self.mid < 1:
            raise ValueError(f"{self.op} layer needs mid >= 1, got {self.mid}")
        if self._type_says("with_heads") and (self.heads < 1 or self.mid % self.heads):
            raise ValueError(f"{self.op} layer needs heads >= 1 dividing mid {self.mid}, got {self.heads}")

    def _type_says(self, flag: str) -> bool:
        bt = block_type(self.op)
        return bool(bt is not None and getattr(bt, flag))

    # -- identity -------------------------------------------------------------
    @property
    def key(self) -> str:
        """Canonical string form; the LUT key."""
        parts = [self.op, f"r{self.res}", f"i{self.cin}", f"o{self.cout}"]
        if self.op in STRIDED or self._type_says("strided"):
            parts += [f"k{self.kernel}", f"s{self.stride}"]
        if self.op in WITH_MID or self._type_says("with_mid"):
            parts.append(f"m{self.mid}")
        if self._type_says("with_heads"):
            parts.append(f"h{self.heads}")
        if self.se:
            parts.append("se")
        parts.append(self.act)
        return ":".join(parts)

    @classmethod
    def from_key(cls, key: str) -> "LayerDesc":
        """Parse a key written by :attr:`key` (used to re-profile a LUT's entries)."""
        parts = key.split(":")
        if len(parts) < 3 or (parts[0] not in OPS and block_type(parts[0]) is None):
            raise ValueError(f"not a layer key: {key!r}")
        fields: dict = {"op": parts[0], "act": parts[-1], "se": "se" in parts[1:-1]}
        names = {"r": "res", "i": "cin", "o": "cout", "k": "kernel", "s": "stride", "m": "mid", "h": "heads"}
        for part in parts[1:-1]:
            m = re.fullmatch(r"([riokmsh])(\d+)", part)
            if m:
                fields[names[m.group(1)]] = int(m.group(2))
            elif part != "se":
                raise ValueError(f"not a layer key: {key!r} (bad part {part!r})")
        desc = cls(**fields)
        if desc.key != key:
            raise ValueError(f"not a canonical layer key: {key!r} (canonical: {desc.key!r})")
        return desc

    # -- shapes and cost ------------------------------------------------------
    @property
    def is_head(self) -> bool:
        return self.op in HEADS or self._type_says("head")

    @property
    def out_res(self) -> int:
        return 1 if self.is_head else math.ceil(self.res / self.stride)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.cin, self.res, self.res)

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.is_head:
            return (1, self.cout)
        return (1, self.cout, self.out_res, self.out_res)

    @property
    def has_expand(self) -> bool:
        return self.op == "mbconv" and self.mid != self.cin

    @property
    def residual(self) -> bool:
        return self.op == "mbconv" and self.stride == 1 and self.cin == self.cout

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and linear layers (BN, activations, pooling excluded)."""
        if (bt := block_type(self.op)) is not None:
            return bt.macs(self)
        o2 = self.out_res**2
        if self.op in ("conv", "rcb"):
            return self.kernel**2 * self.cin * self.cout * o2
        if self.op == "head":
            return self.cin * self.mid + self.mid * self.cout
        if self.op in ("avgpool", "add"):
            return 0
        if self.op == "resblock":
            return (self.kernel**2 * (self.cin + self.cout) + self.cin) * self.cout * o2
        if self.op == "poolhead":
            return self.cin * self.cout
        macs = self.kernel**2 * self.mid * o2 + self.mid * self.cout * o2
        if self.has_expand:
            macs += self.cin * self.mid * self.res**2
        if self.se:
            macs += 2 * self.mid * se_channels(self.mid)
        return macs

    @property
    def params(self) -> int:
        """Trainable parameters, counted from the structure (tested against ``build()``)."""
        if (bt := block_type(self.op)) is not None:
            return bt.params(self)
        if self.op in ("conv", "rcb"):
            return self.kernel**2 * self.cin * self.cout + 2 * self.cout
        if self.op == "head":
            return self.cin * self.mid + self.mid * self.cout + self.cout
        if self.op in ("avgpool", "add"):
            return 0
        if self.op == "resblock":
            return (self.kernel**2 * (self.cin + self.cout) + self.cin) * self.cout + 4 * self.cout
        if self.op == "poolhead":
            return 2 * self.cin + self.cin * self.cout + self.cout
        n = self.kernel**2 * self.mid + 2 * self.mid + self.mid * self.cout + 2 * self.cout
        if self.has_expand:
            n += self.cin * self.mid + 2 * self.mid
        if self.se:
            s = se_channels(self.mid)
            n += 2 * self.mid * s + s + self.mid
        return n

    @property
    def activation_elems(self) -> int:
        """Largest live activation inside the block (elements), for peak-memory estimates."""
        if (bt := block_type(self.op)) is not None and bt.activation_elems is not None:
            return bt.activation_elems(self)
        if self.is_head:
            return self.cin * self.res**2
        inner = self.mid * max(self.res, self.out_res) ** 2 if self.op == "mbconv" else 0
        return max(self.cin * self.res**2 + self.cout * self.out_res**2, inner + self.cin * self.res**2)

    def build(self) -> nn.Module:
        if (bt := block_type(self.op)) is not None:
            return bt.build(self)
        if self.op == "conv":
            return ConvBNAct(self.cin, self.cout, self.kernel, self.stride, self.act)
        if self.op == "mbconv":
            return MBConv(self)
        if self.op == "head":
            return Head(self.cin, self.mid, self.cout, self.act)
        if self.op == "rcb":
            return ReLUConvBN(self.cin, self.cout, self.kernel, self.stride)
        if self.op == "avgpool":
            return nn.AvgPool2d(self.kernel, self.stride, self.kernel // 2, count_include_pad=False)
        if self.op == "add":
            return AddSelf()
        if self.op == "resblock":
            return ReductionBlock(self.cin, self.cout)
        return nn.Sequential(nn.BatchNorm2d(self.cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(self.cin, self.cout))  # poolhead


# -- modules -------------------------------------------------------------------
class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str | None, groups: int = 1):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act not in (None, "none"):
            layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)


class ReLUConvBN(nn.Sequential):
    """The cell space's convolution (NAS-Bench-201): activation first."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual block between stages: two 3x3 ReLU-conv-BN (the first with stride 2) plus
    an average-pooled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a, self.b = ReLUConvBN(cin, cout, 3, 2), ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class AddSelf(nn.Module):
    """What one more input of a cell node costs: one elementwise add of two tensors of the node's shape
    (timed alone, the tensor is added to itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        mid = se_channels(channels)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(y))))


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2/V3)."""

    def __init__(self, desc: LayerDesc):
        super().__init__()
        self.expand = ConvBNAct(desc.cin, desc.mid, 1, 1, desc.act) if desc.has_expand else nn.Identity()
        self.depthwise = ConvBNAct(desc.mid, desc.mid, desc.kernel, desc.stride, desc.act, groups=desc.mid)
        self.se = SqueezeExcite(desc.mid) if desc.se else nn.Identity()
        self.project = ConvBNAct(desc.mid, desc.cout, 1, 1, None)
        self.residual = desc.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class Head(nn.Module):
    """Global pool, 1x1 feature mix with activation (no BN, as MobileNetV3), classifier."""

    def __init__(self, cin: int, mid: int, classes: int, act: str):
        super().__init__()
        self.mix = nn.Conv2d(cin, mid, 1, bias=False)
        self.act = ACTIVATIONS[act]()
        self.classifier = nn.Linear(mid, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.mix(x.mean((2, 3), keepdim=True)))
        return self.classifier(torch.flatten(y, 1))


class Network(nn.Module):
    """A chain of descriptor-built blocks; ``descs`` is kept so tools can map modules to LUT keys."""

    def __init__(self, descs: Iterable[LayerDesc]):
        super().__init__()
        self.descs = tuple(descs)
        self.blocks = nn.Sequential(*(d.build() for d in self.descs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class HasLayers(Protocol):
    """What :func:`build_model` needs of an arch (of any kind): its layer descriptors. Named here, not as
    ``hwnas.spaces.base.SpaceArch``, so that blocks and base do not import each other."""

    def layers(self) -> list[LayerDesc]: ...


def build_model(arch: HasLayers) -> Network:
    """Compose the network of ``arch`` from exactly the modules its descriptors build (an arch of another
    kind of space, a cell arch say, builds its own)."""
    build = getattr(arch, "build", None)
    return build() if build is not None else Network(arch.layers())
