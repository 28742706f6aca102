"""The MobileNetV3 kind's weight-sharing supernet (Once-for-All style): one set of weights holds every network
of an ``mbv3`` space.

Elastic depth (the first d blocks of a stage), kernel (a smaller kernel is the
centre crop of the largest), expand ratio (the first ``mid`` channels) and
resolution (the input is resized). Training, checkpoints, BN recalibration and the ``supernet`` evaluator
are every kind's (:mod:`hwnas.evaluate.supernet`); this module is what only the MBv3 kind has.

``extract(arch)`` copies the inherited weights into ``build_model(arch)``, the
same module tree the LUT timed and finalize exports.
"""
from __future__ import annotations

import itertools
import random
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.spaces.blocks import LayerDesc, MBConv, Network, build_model, make_divisible, se_channels
from hwnas.spaces.mbv3 import MBv3Arch, MBv3Space
from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.supernet import CheckpointError


def _bn(bn: nn.BatchNorm2d, x: torch.Tensor, c: int) -> torch.Tensor:
    """BatchNorm over the first ``c`` channels, updating the shared buffers as nn.BatchNorm2d would."""
    if bn.training:
        if bn.momentum is None:  # cumulative average: what BN recalibration uses
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked)
        else:
            factor = bn.momentum
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            True, factor, bn.eps)
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                        False, 0.0, bn.eps)


def _crop(t: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Leading slice on channel dims (0, 1), centre crop on spatial dims (2, 3): OFA's elastic kernel."""
    index = []
    for dim, n in enumerate(shape):
        start = (t.shape[dim] - n) // 2 if dim >= 2 else 0
        index.append(slice(start, start + n))
    return t[tuple(index)]


class DynamicMBConv(nn.Module):
    """An MBConv at the largest kernel and expand ratio; runs any smaller one by slicing."""

    def __init__(self, desc: LayerDesc):
        super().__init__()
        self.desc = desc
        self.block = MBConv(desc)

    def forward(self, x: torch.Tensor, kernel: int, mid: int) -> torch.Tensor:
        b, d = self.block, self.desc
        y = x
        if mid != d.cin:
            y = F.conv2d(y, b.expand[0].weight[:mid])
            y = b.expand[2](_bn(b.expand[1], y, mid))
        w = _crop(b.depthwise[0].weight, (mid, 1, kernel, kernel))
        y = F.conv2d(y, w, None, d.stride, kernel // 2, 1, mid)
        y = b.depthwise[2](_bn(b.depthwise[1], y, mid))
        if d.se:
            se, s = b.se, se_channels(mid)
            g = y.mean((2, 3), keepdim=True)
            g = se.act(F.conv2d(g, se.reduce.weight[:s, :mid], se.reduce.bias[:s]))
            g = se.gate(F.conv2d(g, se.expand.weight[:mid, :s], se.expand.bias[:mid]))
            y = y * g
        y = _bn(b.project[1], F.conv2d(y, b.project[0].weight[:, :mid]), d.cout)
        return x + y if d.residual else y

    def relaxed(self, x: torch.Tensor, kernels: Sequence[int], w_kernel: torch.Tensor, mids: Sequence[int],
                w_mid: torch.Tensor) -> torch.Tensor:
        """Every kernel and expand choice at once, weighted (FBNetV2's masks): the largest block runs with
        its depthwise weights masked by ``sum_k w_kernel[k] * (centre k x k)`` and its hidden channels by
        ``sum_e w_mid[e] * (first mids[e] channels)``. With one-hot weights it equals ``forward`` for that
        choice, so the relaxation is exact at its corners (an expand ratio whose hidden width is the input's
        skips the expand conv there, as in ``forward``); the cost is the largest block's."""
        b, d = self.block, self.desc
        big, kmax = d.mid, d.kernel
        chan = torch.arange(big, device=x.device)
        mask = sum(w * (chan < m) for w, m in zip(w_mid, mids)).view(1, -1, 1, 1)
        pos = torch.arange(kmax, device=x.device)
        kmask = 0
        for w, k in zip(w_kernel, kernels):
            lo = (kmax - k) // 2
            inside = (pos >= lo) & (pos < lo + k)
            kmask = kmask + w * (inside[:, None] & inside[None, :])
        y = x
        if d.has_expand:
            # a choice whose hidden width is the input's runs no expand conv (as ``forward``): x itself, padded
            expanded = [(w, m) for w, m in zip(w_mid, mids) if m != d.cin]
            y = b.expand[2](b.expand[1](F.conv2d(y, b.expand[0].weight)))
            y = y * sum(w * (chan < m) for w, m in expanded).view(1, -1, 1, 1)  # the largest choice expands
            same = [w for w, m in zip(w_mid, mids) if m == d.cin]
            if same:
                y = y + sum(same) * F.pad(x, (0, 0, 0, 0, 0, big - d.cin))
        y = F.conv2d(y, b.depthwise[0].weight * kmask, None, d.stride, kmax // 2, 1, big)
        y = b.depthwise[2](b.depthwise[1](y)) * mask
        if d.se:
            se, top = b.se, se_channels(big)
            hidden = torch.arange(top, device=x.device)
            smask = sum(w * (hidden < se_channels(m)) for w, m in zip(w_mid, mids)).view(1, -1, 1, 1)
            g = y.mean((2, 3), keepdim=True)
            g = se.act(F.conv2d(g, se.reduce.weight, se.reduce.bias)) * smask
            y = y * se.gate(F.conv2d(g, se.expand.weight, se.expand.bias))
        y = b.project[1](F.conv2d(y, b.project[0].weight))
        return x + y if d.residual else y

    def extract(self, desc: LayerDesc) -> MBConv:
        """A standalone MBConv for ``desc`` (a smaller kernel/mid of this block) with the inherited weights."""
        sub = MBConv(desc)
        big = self.block.state_dict()
        sub.load_state_dict({k: _crop(big[k], v.shape).clone() for k, v in sub.state_dict().items()})
        return sub


class MBv3Supernet(nn.Module):
    """Every network of an ``mbv3`` space at one width multiplier in one set of weights."""

    fair_sampling = False  # FairNAS sampling is the cell supernet's: train_supernet refuses it here

    def __init__(self, space: MBv3Space, width: float | None = None):
        super().__init__()
        if not isinstance(space, MBv3Space):
            raise EvaluatorError(f"space {space.name!r} (kind {getattr(space, 'kind', '?')}) has no weight-sharing "
                                 f"supernet yet (issue 15); rank its archs with a proxy or short training "
                                 f"(bench tools: --no-supernet)")
        self.space = space
        self.width = float(width if width is not None else max(space.width_mults))
        if self.width not in space.width_mults:
            raise ValueError(f"width {self.width} is not one of the space's width_mults {list(space.width_mults)}")
        big = MBv3Arch(space, max(space.resolutions), self.width, space.largest().kernels, space.largest().expands)
        descs = big.layers()
        self.stem, self.first = descs[0].build(), descs[1].build()
        stage_descs = descs[2:-2]
        self.stages = nn.ModuleList()
        i = 0
        for _ in space.stages:
            self.stages.append(nn.ModuleList(DynamicMBConv(d) for d in stage_descs[i:i + space.max_depth]))
            i += space.max_depth
        self.final, self.head = descs[-2].build(), descs[-1].build()

    # -- the archs the training samples (sandwich rule) ----------------------------
    def largest(self) -> MBv3Arch:
        big = self.space.largest()
        return MBv3Arch(self.space, max(self.space.resolutions), self.width, big.kernels, big.expands)

    def smallest(self) -> MBv3Arch:
        small = self.space.smallest()
        return MBv3Arch(self.space, min(self.space.resolutions), self.width, small.kernels, small.expands)

    def students(self, rng: random.Random, n: int, sampling: str = "uniform") -> list[MBv3Arch]:
        """The smallest arch and ``n`` random ones for one training step (every MBv3 arch is connected:
        ``sampling`` changes nothing here)."""
        return [self.smallest()] + [_random_subnet(self.space, self.width, rng) for _ in range(n)]

    def check(self, arch: MBv3Arch) -> None:
        if not isinstance(arch, MBv3Arch):
            raise CheckpointError(f"arch {getattr(arch, 'id', '?')} comes from space "
                                  f"{getattr(getattr(arch, 'space', None), 'name', '?')!r} (kind "
                                  f"{getattr(getattr(arch, 'space', None), 'kind', '?')}), which differs from the "
                                  f"supernet's space {self.space.name!r} in kind")
        mine = {k: v for k, v in self.space.to_dict().items() if k not in ("resolutions", "name", "description")}
        theirs = {k: v for k, v in arch.space.to_dict().items() if k not in ("resolutions", "name", "description")}
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise CheckpointError(f"arch {arch.id} comes from space {arch.space.name!r}, which differs from the "
                                  f"supernet's space {self.space.name!r} in {', '.join(diff)}")
        if arch.width != self.width:
            raise CheckpointError(f"arch {arch.id} has width {arch.width}; this supernet holds width {self.width}")

    def _mids(self, arch: MBv3Arch) -> Iterable[tuple[DynamicMBConv, int, int]]:
        for blocks, desc in zip(itertools.chain.from_iterable(
                blocks[:d] for blocks, d in zip(self.stages, arch.depths)), arch.layers()[2:-2]):
            yield blocks, desc.kernel, desc.mid

    def forward(self, x: torch.Tensor, arch: MBv3Arch) -> torch.Tensor:
        x = self.first(self.stem(x))
        for block, kernel, mid in self._mids(arch):
            x = block(x, kernel, mid)
        return self.head(self.final(x))

    def relaxed_forward(self, x: torch.Tensor, weights: dict[int, torch.Tensor]) -> torch.Tensor:
        """All archs of the space at once (the input's resolution and the supernet's width fixed), each
        searched gene's choices mixed by ``weights[gene]`` (see ``searchable_genes``): a block by its
        kernel and expand weights (``DynamicMBConv.relaxed``), a stage's output as the depth-weighted sum of
        the outputs after each allowed depth (FBNetV2). One-hot weights give ``forward`` of that arch."""
        sp = self.space
        S, D = len(sp.stages), sp.max_depth
        big = self.largest().layers()[2:-2]
        x = self.first(self.stem(x))
        for s, blocks in enumerate(self.stages):
            after = []
            for i, block in enumerate(blocks):
                g = 2 + S + 2 * (s * D + i)  # this slot's kernel gene; its expand gene follows (MBv3Arch.genes)
                mids = [make_divisible(big[s * D + i].cin * e) for e in sp.expands]
                x = block.relaxed(x, sp.kernels, weights[g], mids, weights[g + 1])
                after.append(x)
            x = sum(w * after[d - 1] for w, d in zip(weights[2 + s], sp.depths))
        return self.head(self.final(x))

    def searchable_genes(self) -> list[int]:
        """The genes a differentiable search relaxes (depths, kernels, expands): resolution and width
        are not choices inside one forward pass."""
        return list(range(2, len(self.space.gene_upper_bounds())))

    def extract(self, arch: MBv3Arch) -> Network:
        """``build_model(arch)`` holding this supernet's weights (and current BN statistics) for ``arch``."""
        self.check(arch)
        net = build_model(arch)
        dyn = [b for b, _, _ in self._mids(arch)]
        blocks = list(net.blocks)
        for target, source in zip(blocks[:2] + blocks[-2:], (self.stem, self.first, self.final, self.head)):
            target.load_state_dict(source.state_dict())
        for i, (src, desc) in enumerate(zip(dyn, net.descs[2:-2])):
            blocks[2 + i].load_state_dict(src.extract(desc).state_dict())
        return net.train(self.training)


# -- BN recalibration and evaluation -------------------------------------------
# -- training ------------------------------------------------------------------
def _random_subnet(space: MBv3Space, width: float, rng: random.Random) -> MBv3Arch:
    a = space.sample(rng)
    return MBv3Arch(space, a.resolution, width, a.kernels, a.expands)
