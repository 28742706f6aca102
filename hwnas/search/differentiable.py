"""Differentiable, latency-aware search inside a trained weight-sharing supernet: DARTS's alternating
architecture and weight steps, FBNet's Gumbel-softmax relaxation with the expected latency from the LUT
as a loss term, FBNetV2's masks so that every kernel/expand/depth choice of a block runs in one pass.

Every relaxed choice has logits ``alpha``: by default one choice per searched gene (``net.searchable_genes()``:
depths, kernels, expands; a cell's edge ops), its argmax the gene. A supernet whose choices are not genes
says so with ``relaxed_choices()`` (how many options each has), ``derive(weights, genes)`` (the genes the
choices' weights pick) and ``log_prob(genes, logp)`` (a genotype's log-probability): DARTS's edges, each
an op or ``none``, a node keeping its two strongest (``hwnas.evaluate.darts_supernet``). The strategy never
looks further into a kind. One step:

* **architecture step** (a validation batch): Gumbel-softmax(alpha / T) weights per choice mix every
  option in the supernet's ``relaxed_forward`` (MBv3: masked largest blocks and a depth-weighted sum;
  cells: DARTS's mixed edges; darts: every node's mixed edges from all its predecessors); loss = cross-entropy + lambda * E[latency] / scale; Adam on alpha.
  (A straight-through single path, as GDAS, was tried first: behind BatchNorm its gate's gradient is
  almost nil, 1e-4 against the latency term's 1e-2, and every lambda collapsed to the smallest arch.)
* **weight step** (a training batch): one arch drawn from the same distribution (derived from a
  Gumbel-softmax draw), cross-entropy on the labels, SGD on the weights: the single paths the evaluator
  scores stay trained.

``E[latency] = latency(mode) + sum_g sum_c p_gc * delta_gc``, where ``delta_gc`` is the predicted change
of pinning choice ``g`` to ``c`` in the most likely arch (for a gene: setting it; for a DARTS edge: the
node rewired to keep it, or to drop it for ``none``), recomputed every ``relinearize`` steps from the
LUT predictor's ``predict_many``: exact one change away from that arch, its first-order term further
off, and it needs nothing of the predictor but predictions, so it serves every kind of space.
``scale`` is the budget (or, without one, the latency of the supernet's largest arch): lambda is unit-free.

One generation is one lambda of a path: ``steps`` steps starting from the trained checkpoint (the weights
are reloaded every generation, so a resumed run repeats a generation exactly; alpha and lambda carry over
in the JSON state), then the derived arch (the most likely choice per gene), its projection under the
budget when it misses it (greedy: the least log-probability given up per ms saved), and samples of the
learnt distribution are proposed; the run's evaluator scores them. Lambda moves along the path: with a
budget, times ``lam_factor`` after a derived arch that misses it and divided by its square root after one
that meets it (so the path settles at the budget from both sides); without one, times ``lam_factor``
every generation (a sweep from accurate to fast that spreads the front).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.core.errors import SearchError
from hwnas.search.strategies import Strategy, generation_seed, register_strategy
from hwnas.spaces.base import canonical_arch


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@register_strategy("differentiable")
class Differentiable(Strategy):
    """Gradient-based search of the relaxed choices (see the module docstring); needs ``--evaluator
    supernet``, whose checkpoint it searches in and whose data it trains on."""

    def __init__(self, space: Any, population: int = 50, seed: int = 0, steps: int = 60, lam: float = 0.05,
                 lam_factor: float = 2.0, arch_lr: float = 0.05, weight_lr: float = 0.005,
                 temperature: float = 1.0, batch_size: int = 64, relinearize: int = 10,
                 resolution: int | None = None):
        super().__init__(space, population, seed)
        if not lam >= 0 or not lam_factor > 1 or not arch_lr > 0 or not weight_lr >= 0 or not temperature > 0:
            raise ValueError(f"need lam >= 0, lam_factor > 1, arch_lr > 0, weight_lr >= 0, temperature > 0; got "
                             f"lam={lam}, lam_factor={lam_factor}, arch_lr={arch_lr}, weight_lr={weight_lr}, "
                             f"temperature={temperature}")
        self.steps, self.lam, self.lam_factor = int(steps), float(lam), float(lam_factor)
        self.arch_lr, self.weight_lr, self.temperature = float(arch_lr), float(weight_lr), float(temperature)
        self.batch_size, self.relinearize, self.resolution = int(batch_size), int(relinearize), resolution
        self.generation = 0
        self.alpha: list[list[float]] | None = None  # logits per relaxed choice, set by bind
        self.path: list[dict[str, Any]] = []  # what each lambda derived (in the state and in the run's history)
        self._net: Any = None
        self._own = False  # the supernet relaxes its own choices (relaxed_choices, derive, log_prob), set by bind

    # -- wiring: the run gives the strategy its predictor, evaluator and constraints -------------
    def bind(self, *, predictor: Any, evaluator: Any, constraints: Any, objectives: Sequence[str] = ()) -> None:
        from hwnas.evaluate.data import load_data
        from hwnas.evaluate.device import cpu_layout, resolve_device
        from hwnas.evaluate.supernet import CheckpointError, SupernetEvaluator, load_supernet

        if not isinstance(evaluator, SupernetEvaluator):
            raise SearchError(f"strategy differentiable learns architecture weights inside a weight-sharing supernet: "
                              f"run it with --evaluator supernet --evaluator-option checkpoint=FILE (got --evaluator "
                              f"{getattr(evaluator, 'name', type(evaluator).__name__)})")
        sp = self.space
        res = max(sp.resolutions) if self.resolution is None else self.resolution
        if res not in sp.resolutions:
            raise SearchError(f"strategy option resolution={res!r} is not a resolution the search covers: "
                              f"{list(sp.resolutions)}")
        net, _ = load_supernet(evaluator.checkpoint)
        if not hasattr(net, "relaxed_forward"):  # an optional part of a kind's supernet (a plugin's may lack it)
            raise SearchError(f"strategy differentiable needs a supernet that relaxes its choices (relaxed_forward); "
                              f"the one of space {sp.name!r} (kind {getattr(sp, 'kind', '?')}) has none: use another "
                              f"strategy with --evaluator supernet")
        fixed = net.largest().genes()  # the genes no forward pass chooses: width (mbv3) from the supernet
        fixed[0] = sp.resolutions.index(res)  # gene 0 is the resolution in every kind of space
        try:
            net.check(sp.from_genes(fixed))
        except CheckpointError as e:
            raise SearchError(f"--evaluator-option checkpoint={evaluator.checkpoint}: {e}") from None
        self.device = resolve_device(evaluator.device)
        self._net = cpu_layout(net.to(self.device), self.device)
        self._weights0 = {k: v.clone() for k, v in net.state_dict().items()}
        self._splits = load_data(evaluator.data, evaluator.split_seed, limit=evaluator.data_limit)
        if not len(self._splits.train) or not len(self._splits.val):
            raise SearchError(f"strategy differentiable needs training and validation images; data "
                              f"{evaluator.data!r} has {len(self._splits.train)} and {len(self._splits.val)}")
        self._fixed, self._searched = fixed, net.searchable_genes()
        self._bounds = sp.gene_upper_bounds()
        # the relaxed choices: the supernet's own (DARTS's edges), else one per searched gene, keyed by it
        own = hasattr(net, "relaxed_choices")
        if own and not (hasattr(net, "derive") and hasattr(net, "log_prob")):
            raise SearchError(f"the supernet of space {sp.name!r} relaxes its own choices (relaxed_choices) but "
                              f"cannot map them to genes: it needs derive() and log_prob() too")
        self._own = own
        self._sizes = list(net.relaxed_choices()) if own else [self._bounds[g] + 1 for g in self._searched]
        self._keys = list(range(len(self._sizes))) if own else list(self._searched)
        self._predictor, self._budget = predictor, constraints.latency_limit_ms
        # the supernet's largest arch at this resolution (a cell space's is all conv3x3: not its last ops)
        self._scale = self._budget or float(predictor.predict(sp.from_genes(fixed)))
        if self.alpha is None:
            self.alpha = [[0.0] * n for n in self._sizes]

    def _check_bound(self) -> None:
        if self._net is None:
            raise SearchError("strategy differentiable needs its supernet: the search run binds it "
                              "(hwnas search ... --evaluator supernet); call bind() when driving it by hand")

    # -- the relaxed choices ---------------------------------------------------------------------
    def _derive(self, weights: Sequence[np.ndarray]) -> list[int]:
        """The genes the choices' weights pick: the supernet's own derivation where it has one (DARTS: a
        node's two strongest edges), else the strongest option of each searched gene."""
        if self._own:
            return list(self._net.derive(weights, self._fixed))
        genes = list(self._fixed)
        for g, w in zip(self._searched, weights):
            genes[g] = int(np.argmax(w))
        return genes

    def _log_prob(self, genes: Sequence[int], logp: Sequence[np.ndarray]) -> float:
        """Log-probability of ``genes`` under the learnt distribution (the supernet's where it has one)."""
        if self._own:
            return float(self._net.log_prob(genes, logp))
        return float(sum(lp[genes[g]] for g, lp in zip(self._searched, logp)))

    def _probs(self) -> list[np.ndarray]:
        """softmax(alpha) per relaxed choice: the learnt distribution."""
        return [_softmax(np.asarray(a, float)) for a in self.alpha]

    def _mode(self) -> list[int]:
        return self._derive(self._probs())

    def _linearize(self, probs: Sequence[np.ndarray]) -> tuple[float, list[torch.Tensor]]:
        """The latency of the arch ``probs`` derive (the mode) and, per relaxed choice, the change pinning
        it to each option makes to it (ms)."""
        archs, where = [self.space.from_genes(self._derive(probs))], []
        for k, n in enumerate(self._sizes):
            for c in range(n):
                pinned = list(probs)
                pinned[k] = np.eye(n)[c]
                where.append((k, c))
                archs.append(self.space.from_genes(self._derive(pinned)))
        ms = np.asarray(self._predictor.predict_many(archs), float)
        delta = [np.zeros(n) for n in self._sizes]
        for (k, c), v in zip(where, ms[1:]):
            delta[k][c] = v - ms[0]
        return float(ms[0]), [torch.as_tensor(d, dtype=torch.float32) for d in delta]

    def _gumbel(self, alpha: Sequence[torch.Tensor], gen: torch.Generator) -> list[torch.Tensor]:
        """Gumbel-softmax weights per gene (FBNet): a noisy, differentiable relaxation of one draw."""
        out = []
        for a in alpha:
            u = torch.rand(a.shape, generator=gen).clamp_(1e-9, 1 - 1e-9)
            out.append(F.softmax((a - torch.log(-torch.log(u))) / self.temperature, dim=0))
        return out

    def _batches(self, part: str, gen: torch.Generator, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self._splits.batches(part, self.batch_size, gen, augment=augment, drop_last=True)

    def _train(self) -> None:
        """One generation's alternating steps; alpha is updated in place, the weights are scratch."""
        net, sp, dev = self._net, self.space, self.device
        net.load_state_dict(self._weights0)
        net.train()
        gen = torch.Generator().manual_seed(generation_seed(self.seed, self.generation))
        alpha = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in self.alpha]
        arch_opt = torch.optim.Adam(alpha, lr=self.arch_lr, betas=(0.5, 0.999))
        w_opt = torch.optim.SGD(net.parameters(), lr=self.weight_lr or 1.0, momentum=0.9)
        val, train = self._batches("val", gen, False), self._batches("train", gen, True)
        res, ch = sp.resolutions[self._fixed[0]], sp.in_channels
        for step in range(self.steps):
            if step % self.relinearize == 0:
                base, delta = self._linearize([F.softmax(a.detach(), dim=0).numpy() for a in alpha])
            x, y = next(val)
            weights = {key: w.to(dev) for key, w in zip(self._keys, self._gumbel(alpha, gen))}
            logits = net.relaxed_forward(self._splits.inputs(x, res, ch).to(dev), weights)
            expected = base + sum((F.softmax(a, dim=0) * d).sum() for a, d in zip(alpha, delta))
            loss = F.cross_entropy(logits, y.to(dev)) + self.lam * expected / self._scale
            arch_opt.zero_grad(set_to_none=True)
            net.zero_grad(set_to_none=True)
            loss.backward()
            arch_opt.step()
            if self.weight_lr > 0:
                x, y = next(train)
                with torch.no_grad():  # a single path, as the evaluator runs archs
                    genes = self._derive([w.numpy() for w in self._gumbel(alpha, gen)])
                net.zero_grad(set_to_none=True)
                F.cross_entropy(net(self._splits.inputs(x, res, ch).to(dev), sp.from_genes(genes)),
                                y.to(dev)).backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                w_opt.step()
        self.alpha = [a.detach().tolist() for a in alpha]

    def _project(self, genes: list[int]) -> list[int] | None:
        """Greedy repair of a derived arch that misses the budget: change one searched gene at a time,
        choosing the change that gives up the least log-probability per ms it saves; None when nothing brings
        it under."""
        logp = [np.log(p) for p in self._probs()]
        genes = list(genes)
        for _ in range(sum(self._bounds) + 1):
            now = float(self._predictor.predict(self.space.from_genes(genes)))
            if now <= self._budget:
                return genes
            moves = [(g, c) for g in self._searched for c in range(self._bounds[g] + 1) if c != genes[g]]
            changed = []
            for g, c in moves:
                changed.append(list(genes))
                changed[-1][g] = c
            ms = self._predictor.predict_many([self.space.from_genes(c) for c in changed])
            saved = now - np.asarray(ms, float)
            if not (saved > 1e-12).any():
                return None
            here = self._log_prob(genes, logp)
            cost = np.array([max(here - self._log_prob(c, logp), 0.0) for c in changed]) + 1e-3
            score = np.where(saved > 1e-12, saved / cost, -np.inf)
            g, c = moves[int(np.argmax(score))]
            genes[g] = c
        return None

    # -- ask / tell --------------------------------------------------------------------------------
    def ask(self) -> list[Any]:
        self._check_bound()
        self._train()
        mode = self._mode()
        mode_arch = self.space.from_genes(mode)
        mode_ms = float(self._predictor.predict(mode_arch))
        wanted = [mode_arch]
        projected = None
        if self._budget is not None and mode_ms > self._budget:
            fixed = self._project(mode)
            if fixed is not None:
                projected = self.space.from_genes(fixed)
                wanted.append(projected)
        rng = self._np_rng()
        probs = self._probs()

        def sample() -> Any:  # Gumbel-max: the derivation of a perturbed softmax is a draw of the distribution
            perturbed = [np.log(np.maximum(p, 1e-300)) + rng.gumbel(size=len(p)) for p in probs]
            return self.space.from_genes(self._derive([_softmax(z) for z in perturbed]))

        out, ids = [], set()  # by network: a cell's dead-edge variants are one (canonical_arch)
        for a in itertools.chain(wanted, (sample() for _ in range(50 * self.population))):
            if len(out) >= self.population:
                break
            key = canonical_arch(a).id
            if key not in self.seen and key not in ids:
                out.append(a)
                ids.add(key)
        self.seen.update(ids)
        self.path.append({"generation": self.generation, "lam": self.lam, "arch_id": mode_arch.id,
                          "latency_ms": mode_ms, **({"projected_id": projected.id} if projected else {})})
        if self._budget is None:
            self.lam *= self.lam_factor
        elif mode_ms > self._budget:
            self.lam *= self.lam_factor
        else:
            self.lam /= math.sqrt(self.lam_factor)
        self.generation += 1
        return out or [mode_arch]  # every arch the distribution gives was evaluated before: its mode again

    def tell(self, archs: Sequence[Any], F_: np.ndarray, cv: np.ndarray) -> None:
        self._survive(archs, F_, cv)

    def _extra_state(self) -> dict[str, Any]:
        return {"generation": self.generation, "lam": self.lam, "alpha": self.alpha, "path": self.path}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.generation, self.lam = int(state["generation"]), float(state["lam"])
        alpha = [list(map(float, a)) for a in state["alpha"]]
        if self.alpha is not None and [len(a) for a in alpha] != [len(a) for a in self.alpha]:
            raise ValueError("the stored architecture logits do not fit this space's genes")
        self.alpha, self.path = alpha, list(state["path"])
