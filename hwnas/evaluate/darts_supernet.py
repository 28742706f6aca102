"""Weight-sharing supernet of a DARTS space (Liu et al., ICLR 2019): every cell position holds one module per
(intermediate node, input node, operation), so every genotype of the space runs inside one set of weights.

As in DARTS's search network, a node is connected to all its predecessors (the cell's two inputs and the
nodes before it); an arch runs, per node, its two ``(op, input)`` pairs (``forward``); the weights of a
position are its own (DARTS's search network, and ``arch.build()``, give each cell its own modules), what is
shared across the stacked cells of a type is the genotype, as in the kind's arch. The module tree mirrors
``DartsNetwork`` (``stem``, ``cells``, ``head``; each operation built by the kind's ``CellPosition.op_layer``
as the stand-alone cell builds it), so ``extract(arch)`` copies the shared weights into ``arch.build()``.

**The relaxation** (``relaxed_forward``, for the ``differentiable`` strategy) is DARTS's, not one per gene:
a darts arch's genes per node are (its input pair, the op on the lower input, the op on the higher), and
the op genes name positions in the pair, not edges, so independent softmaxes over them are not DARTS's
mixed edges. Instead the relaxed choices (``relaxed_choices``) are the edges: per cell type, node ``i`` and
input ``j < i + 2``, one categorical over the space's ops and ``none`` (α per edge and op, shared by every
cell of the type); a node sums all its incoming mixed edges (``none`` adds nothing). ``derive`` maps edge
weights to a genotype as DARTS does: per node, the two incoming edges whose strongest non-``none`` op
weighs most, each with that op; the strategy calls it for the learnt mode, for samples (on Gumbel-perturbed
weights: a draw of two distinct inputs, each with its op) and for the one-change neighbours its latency term
linearises around (an edge pinned to one op, or to ``none``: the node rewires). ``log_prob`` scores a
genotype under the edge distributions (its edges' ops, ``none`` on every other edge) for the strategy's
projection under a budget. One-hot weights at a genotype (its edges on their ops, every other edge on
``none``) give ``forward`` of that genotype exactly.

Trained by ``hwnas.evaluate.supernet.train_supernet`` (``build_supernet(darts space)``): the largest arch
(``sep_conv_5x5`` on a chain of inputs) on the labels, random genotypes distilled from it; ``fair``
sampling draws one student per op, the k-th taking the k-th op of each (node, pair position)'s own random
permutation and a random input pair per node: every op trains once a step at every node and position
(strict fairness per edge is out of reach: a genotype uses two of a node's ``i + 2`` inputs).
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.supernet import SAMPLINGS, check_arch_space
from hwnas.spaces.darts import CELL_TYPES, CellPosition, DartsArch, DartsCell, DartsNetwork, DartsSpace


class DartsSuperCell(nn.Module):
    """One cell position: ``edges[i][j][op]`` is node ``i``'s module for ``op`` on input node ``j``."""

    def __init__(self, space: DartsSpace, pos: CellPosition):
        super().__init__()
        self.type = pos.type
        pre0, pre1, *_ = pos.fixed_layers(space)
        self.pre0, self.pre1 = pre0.build(), pre1.build()
        self.edges = nn.ModuleList(
            nn.ModuleList(nn.ModuleDict({op: d.build() if (d := pos.op_layer(op, j < 2)) is not None
                                         else nn.Identity() for op in space.ops}) for j in range(i + 2))
            for i in range(space.nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: Sequence[tuple[str, int]]) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i, node in enumerate(self.edges):
            (op_a, a), (op_b, b) = cell[2 * i], cell[2 * i + 1]
            states.append(node[a][op_a](states[a]) + node[b][op_b](states[b]))
        return torch.cat(states[2:], 1)

    def relaxed(self, s0: torch.Tensor, s1: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """DARTS's mixed cell: node ``i`` sums, over every earlier node ``j``, its ops weighted by that edge's
        ``weights`` (one per edge in node-then-input order; the space's ops, then ``none``, which adds 0)."""
        states = [self.pre0(s0), self.pre1(s1)]
        w = iter(weights)
        for node in self.edges:
            total: torch.Tensor | float = 0.0
            for j, choice in enumerate(node):
                we = next(w)
                for k, module in enumerate(choice.values()):
                    total = total + we[k] * module(states[j])
            states.append(total)
        return torch.cat(states[2:], 1)

    def copy_into(self, cell: DartsCell, genotype: Sequence[tuple[str, int]]) -> None:
        """Load the shared weights of ``genotype``'s operations (and the preprocessing) into ``cell``."""
        cell.pre0.load_state_dict(self.pre0.state_dict())
        cell.pre1.load_state_dict(self.pre1.state_dict())
        for n, ((op, j), module) in enumerate(zip(genotype, cell.ops)):
            module.load_state_dict(self.edges[n // 2][j][op].state_dict())


class DartsSupernet(nn.Module):
    """Every genotype of a DARTS space in one set of weights; ``forward(x, arch)`` runs one of them."""

    width = None  # a DARTS space has no width multiplier
    fair_sampling = True  # one student per op (see the module docstring)

    def __init__(self, space: DartsSpace, width: float | None = None):
        super().__init__()
        if not isinstance(space, DartsSpace):
            raise EvaluatorError(f"DartsSupernet takes a darts space, got {type(space).__name__} "
                                 f"{getattr(space, 'name', '?')!r}")
        if width is not None:
            raise EvaluatorError(f"a darts space has no width multiplier; got width {width}")
        self.space = space
        res = max(space.resolutions)  # the blocks' keys carry a resolution; their weights fit any
        self.stem = space._stem(res).build()
        self.cells = nn.ModuleList(DartsSuperCell(space, pos) for pos in space.positions(res))
        self.head = space._head(res).build()

    # -- the archs the training samples --------------------------------------------
    def largest(self) -> DartsArch:
        return self.space.largest()

    def smallest(self) -> DartsArch:
        return self.space.smallest()

    def students(self, rng: random.Random, n: int, sampling: str = "uniform") -> list[DartsArch]:
        """``n`` random genotypes for one training step (``uniform``); ``fair``: ``n`` is ignored, one per op
        of the space, each (node, pair position) taking the ops in its own random order, the pair random."""
        if sampling not in SAMPLINGS:
            raise EvaluatorError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        sp = self.space
        if sampling != "fair":  # every genotype is connected: "connected" is "uniform" here
            return [sp.sample(rng) for _ in range(n)]
        perms = [[rng.sample(list(sp.ops), len(sp.ops)) for _ in range(2 * sp.nodes)] for _ in CELL_TYPES]

        def cell(t: int, k: int) -> tuple[tuple[str, int], ...]:
            out: list[tuple[str, int]] = []
            for i in range(sp.nodes):
                a, b = rng.choice(sp.pairs(i))
                out += [(perms[t][2 * i][k], a), (perms[t][2 * i + 1][k], b)]
            return tuple(out)

        return [DartsArch(sp, rng.choice(sp.resolutions), cell(0, k), cell(1, k)) for k in range(len(sp.ops))]

    # -- running and extracting ------------------------------------------------------
    def check(self, arch: DartsArch) -> None:
        check_arch_space(self.space, arch, DartsArch)

    def forward(self, x: torch.Tensor, arch: DartsArch) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, getattr(arch, cell.type))
        return self.head(s1)

    def extract(self, arch: DartsArch) -> DartsNetwork:
        """``arch.build()`` holding this supernet's weights (and current BN statistics) for ``arch``."""
        self.check(arch)
        net = arch.build()
        net.stem.load_state_dict(self.stem.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        for mine, theirs in zip(self.cells, net.cells):
            mine.copy_into(theirs, getattr(arch, mine.type))
        return net.train(self.training)

    # -- the relaxation (the differentiable strategy) -----------------------------------
    def _edges(self) -> list[tuple[int, int, int]]:
        """Every relaxed choice: (cell type index, node, input), cell types, then nodes, then inputs."""
        return [(t, i, j) for t in range(len(CELL_TYPES)) for i in range(self.space.nodes) for j in range(i + 2)]

    def relaxed_choices(self) -> list[int]:
        """How many options each relaxed choice has: per edge, the space's ops and ``none`` (last)."""
        return [len(self.space.ops) + 1] * len(self._edges())

    def searchable_genes(self) -> list[int]:
        """The genes a search changes: every node's pair and ops (the resolution is not a choice inside one
        forward pass)."""
        return list(range(1, len(self.space.gene_upper_bounds())))

    def relaxed_forward(self, x: torch.Tensor, weights: dict[int, torch.Tensor]) -> torch.Tensor:
        """All genotypes at once: edge ``k`` (``relaxed_choices`` order) mixes its ops by ``weights[k]``, in
        every cell of its type."""
        per_type: list[list[torch.Tensor]] = [[] for _ in CELL_TYPES]
        for k, (t, _, _) in enumerate(self._edges()):
            per_type[t].append(weights[k])
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell.relaxed(s0, s1, per_type[CELL_TYPES.index(cell.type)])
        return self.head(s1)

    def derive(self, weights: Sequence[np.ndarray], genes: Sequence[int]) -> list[int]:
        """DARTS's genotype from edge weights: per node, its two edges whose strongest non-``none`` op weighs
        most (ties: the lower input), each with that op; ``genes`` gives the genes no edge decides (the
        resolution)."""
        sp, out = self.space, list(genes)
        by_node: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
        for (t, i, j), w in zip(self._edges(), weights):
            ops = np.asarray(w, float)[:len(sp.ops)]
            by_node.setdefault((t, i), []).append((-float(ops.max()), j, int(ops.argmax())))
        for (t, i), edges in by_node.items():
            (_, a, op_a), (_, b, op_b) = sorted(sorted(edges)[:2], key=lambda e: e[1])
            k = 1 + 3 * (t * sp.nodes + i)
            out[k:k + 3] = [sp.pairs(i).index((a, b)), op_a, op_b]
        return out

    def log_prob(self, genes: Sequence[int], logp: Sequence[np.ndarray]) -> float:
        """Log-probability of the genotype ``genes`` under independent edge distributions ``logp``: its
        edges on their ops, every other edge on ``none``."""
        sp = self.space
        chosen: dict[tuple[int, int, int], int] = {}
        for t in range(len(CELL_TYPES)):
            for i in range(sp.nodes):
                k = 1 + 3 * (t * sp.nodes + i)
                a, b = sp.pairs(i)[genes[k]]
                chosen[(t, i, a)], chosen[(t, i, b)] = genes[k + 1], genes[k + 2]
        none = len(sp.ops)
        return float(sum(lp[chosen.get(e, none)] for e, lp in zip(self._edges(), logp)))
