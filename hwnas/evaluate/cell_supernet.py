"""Weight-sharing one-shot supernet of a cell space (NAS-Bench-201 style, as in SPOS and NB201's own
one-shot baselines): every edge of every cell holds one module per operation of the space; an arch runs
the operation it picks on each edge, so one set of weights holds every network of the space.

The module tree mirrors ``CellNetwork`` (stem, cells, reduction blocks, head at the same positions of
``body``), and each edge's candidates are built by ``hwnas.spaces.cells.edge_op`` as the stand-alone cell
builds its own: ``extract(arch)`` copies the shared weights into ``arch.build()`` module by module.

Trained by ``hwnas.evaluate.supernet.train_supernet`` (``build_supernet(cell space)`` builds this class):
the largest arch (``conv3x3`` on every edge) with the labels, random archs (uniform, or connected
ones only) distilled from it; the all-``none`` smallest arch outputs a constant and is not trained.
``fair`` sampling is FairNAS's strict fairness (Chu et al. 2019): one student per op, each edge's ops in
a random order, so every op of every edge trains exactly once a step.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torch import nn

from hwnas.spaces.cells import Cell, CellArch, CellNetwork, CellSpace, ZeroOp, edge_op, live_edges, run_cell
from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.supernet import SAMPLINGS, check_arch_space


class SuperCell(nn.Module):
    """One cell position of the supernet: ``choices[e][op]`` is edge ``e``'s module for ``op``."""

    def __init__(self, space: CellSpace, c: int):
        super().__init__()
        self.space = space
        self.choices = nn.ModuleList(nn.ModuleDict({op: edge_op(op, c) for op in space.ops if op != "none"})
                                     for _ in space.edges)

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        # only the edges on a path from input to output run, as in Cell: the others change no output
        sp = self.space
        computed = sp.dead_edges == "computed"
        return run_cell(x, sp.nodes, [(j, i, ZeroOp() if op == "none" else choice[op]) for (j, i), choice, op, live
                                      in zip(sp.edges, self.choices, ops, live_edges(sp, ops))
                                      if live or (computed and op == "none")], computed)

    def relaxed(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Every edge a mixture of its ops, ``weights[e][k]`` for the space's ``ops[k]`` (``none`` adds
        nothing): DARTS's mixed operation. An edge's output is also scaled by the soft reachability of its
        source node (1 at the input; a node is reached unless every edge into it is ``none`` or comes from an
        unreached node), so that, as in ``forward``, a conv after a node that nothing feeds adds nothing (it
        would add its BatchNorm's shift). One-hot weights give ``forward`` of that cell exactly."""
        sp = self.space
        k_none = sp.ops.index("none") if "none" in sp.ops else None
        reach: list[torch.Tensor | float] = [1.0] + [0.0] * (sp.nodes - 1)
        unreached = [1.0] * sp.nodes
        for (j, i), w in zip(sp.edges, weights):
            carried = reach[i] * (1 - w[k_none]) if k_none is not None else reach[i]
            unreached[j] = unreached[j] * (1 - carried)
            reach[j] = 1 - unreached[j]

        def mixed(choice: nn.ModuleDict, w: torch.Tensor, r):
            return lambda t: r * sum(w[k] * choice[op](t) for k, op in enumerate(sp.ops) if op != "none")

        return run_cell(x, sp.nodes, [(j, i, mixed(choice, w, reach[i])) for (j, i), choice, w
                                      in zip(sp.edges, self.choices, weights)], sp.dead_edges == "computed")

    def copy_into(self, cell: Cell) -> None:
        """Load the shared weights of the ops ``cell`` holds into it (its ``edges``/``ops`` pairs)."""
        index = {edge: e for e, edge in enumerate(self.space.edges)}
        for (j, i, op), module in zip(cell.edges, cell.ops):
            if op != "none":  # a computed space's none (x * 0) has no weights
                module.load_state_dict(self.choices[index[(j, i)]][op].state_dict())


class CellSupernet(nn.Module):
    """Every network of a cell space in one set of weights; ``forward(x, arch)`` runs one of them."""

    width = None  # a cell space has no width multiplier (the MBv3 supernet holds one width)
    fair_sampling = True  # FairNAS: one student per op of the space (students(sampling="fair"))

    def __init__(self, space: CellSpace, width: float | None = None):
        super().__init__()
        if not isinstance(space, CellSpace):
            raise EvaluatorError(f"CellSupernet takes a cell space, got {type(space).__name__} {space.name!r}")
        if width is not None:
            raise EvaluatorError(f"a cell space has no width multiplier; got width {width}")
        self.space = space
        template = CellNetwork(space.largest())  # the stem, reduction blocks and head, as the networks build them
        widths = iter([c for c in space.channels for _ in range(space.cells_per_stage)])  # cells, stage by stage
        self.body = nn.Sequential(*(SuperCell(space, next(widths)) if isinstance(m, Cell) else m
                                    for m in template.body))

    # -- the archs the training samples --------------------------------------------
    def largest(self) -> CellArch:
        return self.space.largest()

    def smallest(self) -> CellArch:
        return self.space.smallest()

    def students(self, rng: random.Random, n: int, sampling: str = "uniform") -> list[CellArch]:
        """``n`` random archs for one training step; ``connected``: only archs whose output node some path
        reaches (a disconnected arch outputs a constant: it trains the head's bias only); ``fair``
        (FairNAS's strict fairness): ``n`` is ignored, one arch per op of the space, the k-th taking the
        k-th op of each edge's own random permutation, so each op of each edge is in exactly one of them."""
        if sampling not in SAMPLINGS:
            raise EvaluatorError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        if sampling == "fair":
            return self._fair(rng)
        return [self._sample(rng, sampling == "connected") for _ in range(n)]

    def _fair(self, rng: random.Random) -> list[CellArch]:
        sp = self.space
        perms = [rng.sample(list(sp.ops), len(sp.ops)) for _ in sp.edges]
        return [CellArch(sp, rng.choice(sp.resolutions), tuple(p[k] for p in perms)) for k in range(len(sp.ops))]

    def _sample(self, rng: random.Random, connected: bool) -> CellArch:
        for _ in range(1000):
            arch = self.space.sample(rng)
            if arch.connected or not connected:
                return arch
        raise EvaluatorError(f"no connected arch in 1000 draws from space {self.space.name!r}; its ops "
                             f"{list(self.space.ops)} leave almost every cell disconnected: use sampling uniform")

    # -- running and extracting ------------------------------------------------------
    def check(self, arch: CellArch) -> None:
        check_arch_space(self.space, arch, CellArch)

    def forward(self, x: torch.Tensor, arch: CellArch) -> torch.Tensor:
        for m in self.body:
            x = m(x, arch.ops) if isinstance(m, SuperCell) else m(x)
        return x

    def relaxed_forward(self, x: torch.Tensor, weights: dict[int, torch.Tensor]) -> torch.Tensor:
        """All archs at once: edge ``e`` mixes its ops by ``weights[1 + e]`` (gene ``1 + e`` is its op, as
        in ``CellArch.genes``), in every cell of the network (one cell design repeats)."""
        per_edge = [weights[1 + e] for e in range(len(self.space.edges))]
        for m in self.body:
            x = m.relaxed(x, per_edge) if isinstance(m, SuperCell) else m(x)
        return x

    def searchable_genes(self) -> list[int]:
        """The genes a differentiable search relaxes: every edge's op (the resolution is not a choice
        inside one forward pass)."""
        return list(range(1, len(self.space.gene_upper_bounds())))

    def extract(self, arch: CellArch) -> CellNetwork:
        """``arch.build()`` holding this supernet's weights (and current BN statistics) for ``arch``."""
        self.check(arch)
        net = arch.build()
        if len(net.body) != len(self.body):
            raise EvaluatorError(f"the network of arch {arch.id} has {len(net.body)} parts, the supernet "
                                 f"{len(self.body)}: CellNetwork changed shape; rebuild the supernet to match")
        for mine, theirs in zip(self.body, net.body):
            if isinstance(mine, SuperCell):
                mine.copy_into(theirs)
            else:
                theirs.load_state_dict(mine.state_dict())
        return net.train(self.training)

