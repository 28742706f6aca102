"""Zero-cost proxies: score an untrained network from one batch, no training.

Each proxy builds the network with a seeded initialisation and, where it needs
data, reads one seeded batch of training images, so the same (arch, seed, data)
gives the same score. They cost well under a second at demo size; how well they
rank architectures is measured, not assumed (``tools/bench_evaluators.py``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.spaces.blocks import ACTIVATIONS, build_model
from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.evaluate.data import Splits, load_data, require_data
from hwnas.spaces.base import SpaceArch, layer_costs

Batch = tuple[torch.Tensor, torch.Tensor]
# The score of a network with no signal at all (zero gradients, a singular kernel): log of the smallest
# positive double. Below any real score, yet finite: scores go into strict JSON (no -Infinity there).
NO_SIGNAL = math.log(5e-324)


def _log(total: float) -> float:
    return math.log(total) if total > 0 else NO_SIGNAL


def _model(arch: SpaceArch, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch)


def _forward_hooked(model: nn.Module, modules: list[nn.Module], hook: Any, x: torch.Tensor) -> None:
    """One forward pass without gradients with ``hook`` on ``modules`` (removed after, whatever happens): how
    the proxies that read feature maps see them."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Conv and linear weights: what SNIP and GradNorm score (BN affine excluded, as in the papers)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """log SynFlow (Tanaka et al. 2020): sum |θ · dR/dθ| with |θ| weights and an all-ones input.

    Data-free. Computed in float64 with BN in eval mode (an identity at init), so
    the score depends only on the architecture and the seed of the initialisation.
    """
    model = _model(arch, seed).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.ones(1, arch.space.in_channels, arch.resolution, arch.resolution, dtype=torch.float64)
    model.zero_grad()
    model(x).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return _log(total)


def naswot(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """NASWOT (Mellor et al. 2021): log|det K|, K the Hamming-similarity kernel of the binary activation codes.

    Networks whose activations separate the inputs of a batch score higher.
    """
    assert batch is not None
    model = _model(arch, seed).train()
    x = batch[0]
    n = x.shape[0]
    K = torch.zeros(n, n, dtype=torch.float64)

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        c = (out.detach().reshape(n, -1) > 0).double()
        K.add_(c @ c.T + (1 - c) @ (1 - c).T)

    acts = tuple(ACTIVATIONS.values())
    _forward_hooked(model, [m for m in model.modules() if isinstance(m, acts)], hook, x)
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if float(sign) > 0 else NO_SIGNAL


def grad_norm(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """GradNorm (Abdelfattah et al. 2021): log of the summed L2 norms of the loss gradients of the weights."""
    assert batch is not None
    model = _model(arch, seed).train()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    total = sum(float(w.grad.norm()) for w in _weights(model) if w.grad is not None)
    return _log(total)


def snip(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """SNIP (Lee et al. 2019) summed over the network: log sum |θ · dL/dθ| on one batch."""
    assert batch is not None
    model = _model(arch, seed).train()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(model) if w.grad is not None)
    return _log(total)


MECO_BATCH = 8


def meco(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): the sum over the network's feature maps of the smallest eigenvalue of
    the Pearson correlation matrix between their channels, from one forward pass of the untrained network.

    Channels that are close to linear combinations of each other (a small eigenvalue) carry less: a network
    whose layers keep their channels decorrelated ranks higher. Data-free here: the input is a batch of
    ``MECO_BATCH`` seeded Gaussian images and the correlations are those of the first image's feature maps
    (as the paper's code reads its batch), BN normalising with the batch's statistics (train mode, as at the
    start of training; a batch, not one image, so a 1x1 feature map still has statistics). Every leaf module's
    output counts once (the paper hooks every module, so a container and its
    last child count twice; leaves make the score independent of how a kind nests its modules). A feature map
    of one position (after global pooling) or one channel has no correlation matrix and adds nothing; a channel
    that is constant has no correlation with the others, which counts as zero, as in the paper."""
    model = _model(arch, seed).train()
    total = 0.0

    def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
        nonlocal total
        f = (out[0] if isinstance(out, (tuple, list)) else out)
        if not isinstance(f, torch.Tensor) or f.dim() < 2:
            return
        f = f[0].detach().reshape(f.shape[1], -1).double()  # the first image: channels x positions
        if f.shape[0] < 2 or f.shape[1] < 2:
            return
        corr = torch.nan_to_num(torch.corrcoef(f), nan=0.0, posinf=0.0, neginf=0.0)
        total += float(torch.linalg.eigvalsh(corr)[0])

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(MECO_BATCH, arch.space.in_channels, arch.resolution, arch.resolution, generator=g)
    _forward_hooked(model, [m for m in model.modules() if next(m.children(), None) is None], hook, x)
    return total


def macs(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """Size: the multiply-accumulates of one image, from the kind's layer list (no network is built). The
    baseline every accuracy evaluator must beat, and a member a vote can combine with one that sees more."""
    return float(layer_costs(arch.layers())[0])


def params(arch: SpaceArch, seed: int = 0, batch: Batch | None = None) -> float:
    """Size: the parameter count, from the kind's layer list."""
    return float(layer_costs(arch.layers())[1])


SIZE_PROXIES = ("macs", "params")  # no network, no data: the size baselines, scored as proxies

PROXIES: dict[str, tuple[Callable[..., float], bool]] = {  # name -> (function, needs data)
    "synflow": (synflow, False),
    "meco": (meco, False),
    "macs": (macs, False),
    "params": (params, False),
    "naswot": (naswot, True),
    "grad_norm": (grad_norm, True),
    "snip": (snip, True),
}


class ProxyEvaluator:
    """One zero-cost proxy behind the Evaluator interface (``proxy:NAME``)."""

    def __init__(self, proxy: str, seed: int = 0, data: str | None = None, split_seed: int = 0, batch_size: int = 64,
                 data_limit: int | None = None):
        if proxy not in PROXIES:
            raise EvaluatorError(f"unknown proxy {proxy!r}; available: {sorted(PROXIES)}")
        self.proxy, self.name = proxy, f"proxy:{proxy}"
        self.fn, self.needs_data = PROXIES[proxy]
        self.seed, self.data, self.split_seed, self.batch_size = int(seed), data, int(split_seed), int(batch_size)
        self.data_limit = None if data_limit is None else int(data_limit)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"proxy": self.proxy, "seed": self.seed, "torch": torch.__version__}
        if self.needs_data:
            splits = self._splits()
            cfg.update(splits.config(), batch_size=self.batch_size)
        return cfg

    def _splits(self) -> Splits:
        return load_data(require_data(self.data, self.name), self.split_seed, limit=self.data_limit)

    def batch(self, splits: Splits, arch: SpaceArch) -> Batch:
        g = torch.Generator().manual_seed(self.seed)
        x, y = next(splits.batches("train", self.batch_size, g))
        return splits.inputs(x, arch.resolution, arch.space.in_channels), y

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        splits = self._splits() if self.needs_data else None
        if splits is not None and archs:
            splits.check_space(archs[0].space.in_channels, archs[0].space.num_classes)
        out = []
        with torch.enable_grad():
            for a in archs:
                out.append(self.fn(a, self.seed, self.batch(splits, a) if splits is not None else None))
        return out


def _factory(proxy: str) -> Callable[..., ProxyEvaluator]:
    def make(seed: int = 0, data: str | None = None, split_seed: int = 0, batch_size: int = 64,
             data_limit: int | None = None) -> ProxyEvaluator:
        if not PROXIES[proxy][1]:  # data-free: data options do not change its score
            return ProxyEvaluator(proxy, seed=seed)
        return ProxyEvaluator(proxy, seed=seed, data=data, split_seed=split_seed, batch_size=batch_size,
                              data_limit=data_limit)

    make.__name__ = make.__qualname__ = f"proxy_{proxy}"
    make.__doc__ = (f"Zero-cost proxy {proxy}: a score of the untrained network, "
                    + ("data-free (the data options do not change it)." if not PROXIES[proxy][1]
                       else "from one batch of the data."))
    return make


# one factory per proxy, each a module attribute, so the registry's target hwnas.evaluate.proxies:proxy_NAME
# names it; its signature is what the registry checks options against (a typo is refused, not dropped)
proxy_synflow = register_evaluator("proxy:synflow")(_factory("synflow"))
proxy_meco = register_evaluator("proxy:meco")(_factory("meco"))
proxy_macs = register_evaluator("proxy:macs")(_factory("macs"))
proxy_params = register_evaluator("proxy:params")(_factory("params"))
proxy_naswot = register_evaluator("proxy:naswot")(_factory("naswot"))
proxy_grad_norm = register_evaluator("proxy:grad_norm")(_factory("grad_norm"))
proxy_snip = register_evaluator("proxy:snip")(_factory("snip"))
