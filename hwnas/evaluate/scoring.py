"""Scoring a network on a data split, shared by every evaluator that trains or inherits weights (supernet,
short training, finalize): top-1 accuracy, and BatchNorm statistics recalibrated for one network."""
from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
from torch import nn

from hwnas.evaluate.data import Splits
from hwnas.evaluate.device import device_of


def batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, forward: Callable[[torch.Tensor], Any], splits: Splits, resolution: int,
                   channels: int, batches: int = 4, batch_size: int = 64, seed: int = 0) -> None:
    """Replace running BN statistics by the exact average over ``batches`` training batches (seeded)."""
    bns = batchnorms(model)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    g = torch.Generator().manual_seed(seed)
    device = device_of(model)
    try:
        for x, _ in itertools.islice(splits.batches("train", batch_size, g), batches):
            forward(splits.inputs(x, resolution, channels).to(device))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.train(was_training)


@torch.no_grad()
def accuracy(forward: Callable[[torch.Tensor], torch.Tensor], splits: Splits, part: str, resolution: int,
             channels: int, batch_size: int = 256, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy in percent on a split (``forward`` runs on ``device``)."""
    x, y = splits.tensors(part, resolution, channels)
    correct = 0
    for i in range(0, len(y), batch_size):
        pred = forward(x[i:i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == y[i:i + batch_size]).sum())
    return 100.0 * correct / len(y)
