"""Zero-cost proxies: score an untrained network in one pass, no training."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from hwnas.blocks import build_model
from hwnas.evaluate.base import register_evaluator
from hwnas.space import Arch


def synflow(arch: Arch, seed: int = 0) -> float:
    """log of SynFlow (Tanaka et al. 2020): sum |θ · dR/dθ| with |θ| weights and an all-ones input.

    Data-free. Computed in float64 with BN in eval mode (an identity at init), so
    the score depends only on the architecture and the seed of the initialisation.
    """
    torch.manual_seed(seed)
    model = build_model(arch).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.ones(1, arch.space.in_channels, arch.resolution, arch.resolution, dtype=torch.float64)
    model.zero_grad()
    model(x).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


@register_evaluator("proxy:synflow")
class SynflowEvaluator:
    name = "proxy:synflow"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def config(self) -> dict[str, Any]:
        return {"proxy": "synflow", "seed": self.seed, "torch": torch.__version__}

    def evaluate(self, archs: Sequence[Arch]) -> list[float]:
        with torch.enable_grad():
            return [synflow(a, self.seed) for a in archs]
