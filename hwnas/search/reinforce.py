"""REINFORCE with an LSTM controller (Zoph & Le 2017; the seeds' ``RLController``): one decision per gene.

The controller emits each gene of an architecture in turn (the previous choice is the next input),
``population`` archs per generation. Its reward is **multi-objective and scale-free**: minus the
constrained Pareto rank of the arch among the generation and the elite kept so far (rank 0 is the
current front; an arch that breaks a constraint ranks behind every feasible one, by how much it breaks
it). MnasNet's ``acc * (lat / T) ** w`` needs the budget and which column is latency, which a strategy
does not see (it gets minimisation objectives and constraint violations only, for any objectives),
and it needs ``w`` tuned per space; the rank reward needs neither and rewards the whole front, which is
what the search returns. Policy gradient with an exponential-moving-average baseline and an entropy
bonus; one Adam step per generation. Controller weights, Adam's state, the baseline and the sampling
RNG are all in ``state_dict()``, so a resumed run continues exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.search.pareto import rank_and_crowding
from hwnas.search.strategies import Strategy, register_strategy
from hwnas.spaces.base import Space, SpaceArch


class Controller(nn.Module):
    """LSTM over the gene sequence: token 0 starts, then each gene's choice (offset per gene) feeds the next."""

    def __init__(self, bounds: Sequence[int], hidden: int):
        super().__init__()
        self.bounds = list(bounds)
        self.offsets = np.concatenate([[1], 1 + np.cumsum(self.bounds)[:-1]]).tolist()
        self.hidden = hidden
        self.embed = nn.Embedding(1 + sum(self.bounds), hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, b) for b in self.bounds)

    def start(self, n: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        z = torch.zeros(n, self.hidden)
        return torch.zeros(n, dtype=torch.long), (z, z.clone())

    def step(self, token: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], gene: int):
        h, c = self.cell(self.embed(token), state)
        return self.heads[gene](h), (h, c)

    def log_prob_entropy(self, genes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum over genes of log p(choice) and of the entropy, for a batch of gene vectors [N, G]."""
        token, state = self.start(len(genes))
        logp = torch.zeros(len(genes))
        ent = torch.zeros(len(genes))
        for g in range(len(self.bounds)):
            logits, state = self.step(token, state, g)
            lp = torch.log_softmax(logits, -1)
            logp = logp + lp.gather(1, genes[:, g:g + 1]).squeeze(1)
            ent = ent - (lp.exp() * lp).sum(-1)
            token = genes[:, g] + self.offsets[g]
        return logp, ent


def _to_json(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj.tolist(), "dtype": str(obj.dtype).removeprefix("torch."), "shape": list(obj.shape)}
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict) and set(obj) == {"tensor", "dtype", "shape"}:
        return torch.tensor(obj["tensor"], dtype=getattr(torch, obj["dtype"])).reshape(obj["shape"])
    if isinstance(obj, dict):
        return {(int(k) if k.isdigit() else k): _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


@register_strategy("reinforce")
class Reinforce(Strategy):
    """Policy-gradient controller; the reward is the constrained Pareto rank (see the module docstring)."""

    def __init__(self, space: Space, population: int = 50, seed: int = 0, mutate_prob: float | None = None,
                 hidden: int = 64, lr: float = 0.005, baseline_decay: float = 0.9, entropy_weight: float = 0.001):
        super().__init__(space, population, seed, mutate_prob)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if lr <= 0 or entropy_weight < 0:
            raise ValueError("lr must be > 0 and entropy_weight >= 0")
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        with torch.random.fork_rng():  # seeded initial weights without touching the caller's torch RNG
            torch.manual_seed(seed)
            self.controller = Controller([u + 1 for u in space.gene_upper_bounds()], int(hidden))
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=float(lr))
        self.baseline: float | None = None
        self._genes: dict[str, list[int]] = {}  # what the controller emitted for each asked arch

    @torch.no_grad()
    def _sample(self, n: int) -> list[SpaceArch]:
        """``n`` archs drawn gene by gene (a batch through the LSTM) with this strategy's RNG (inverse CDF),
        so that state_dict() holds every source of randomness."""
        token, state = self.controller.start(n)
        genes = np.zeros((n, len(self.controller.bounds)), dtype=int)
        for g in range(len(self.controller.bounds)):
            logits, state = self.controller.step(token, state, g)
            cdf = torch.softmax(logits.double(), -1).cumsum(-1).numpy()
            u = np.array([self.rng.random() for _ in range(n)])
            genes[:, g] = np.minimum((cdf < u[:, None]).sum(1), cdf.shape[1] - 1)
            token = torch.as_tensor(genes[:, g] + self.controller.offsets[g])
        archs = [self.space.from_genes(row) for row in genes]
        for a, row in zip(archs, genes):
            self._genes.setdefault(a.id, row.tolist())  # the first row that gave this arch is the one asked
        return archs

    def ask(self) -> list[SpaceArch]:
        self._genes = {}
        batch = iter(self._sample(self._capped(self.population)))
        # the batch first; an arch proposed before is replaced by fresh draws (a converged policy repeats)
        return self._fresh(lambda: next(batch, None) or self._sample(1)[0], self.population)

    def tell(self, archs: Sequence[SpaceArch], F: np.ndarray, cv: np.ndarray) -> None:
        F, cv = np.asarray(F, float), np.asarray(cv, float)
        allF = np.vstack([self.F, F]) if len(self.pop) else F
        allcv = np.concatenate([self.cv, cv])
        rank, crowd = rank_and_crowding(allF, allcv)
        reward = -rank[len(self.pop):].astype(float)
        mean = float(reward.mean())
        self.baseline = mean if self.baseline is None else \
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
        genes = torch.tensor([self._genes.get(a.id) or a.genes() for a in archs], dtype=torch.long)
        logp, ent = self.controller.log_prob_entropy(genes)
        adv = torch.tensor(reward - self.baseline, dtype=torch.float32)
        loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        # the elite the next generation is ranked against: NSGA-II survival (pareto.survive) on the ranking above
        keep = np.lexsort((np.arange(len(allF)), -crowd, rank))[:self.population]
        pool = self.pop + list(archs)
        self.pop, self.F, self.cv = [pool[i] for i in keep], allF[keep], allcv[keep]

    def _extra_state(self) -> dict[str, Any]:
        return {"controller": _to_json(self.controller.state_dict()), "optimizer": _to_json(self.opt.state_dict()),
                "baseline": self.baseline}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(_from_json(state["controller"]))
        self.opt.load_state_dict(_from_json(state["optimizer"]))
        self.baseline = state["baseline"]
