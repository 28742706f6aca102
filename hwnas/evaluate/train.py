"""Short training from scratch with early stopping: the slow, honest accuracy for small tasks.

It is the reference the cheaper evaluators are ranked against (bench_evaluators)
and an evaluator of its own (``train``) when the space is small enough.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.spaces.blocks import build_model
from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.evaluate.data import Splits, load_data, require_data
from hwnas.evaluate.device import deterministic, resolve_device
from hwnas.evaluate.scoring import accuracy, recalibrate_bn
from hwnas.spaces.base import SpaceArch


@dataclass
class TrainResult:
    best_val_acc: float
    best_epoch: int
    epochs_run: int
    model: nn.Module  # with the weights of the best epoch


def train_arch(arch: SpaceArch, splits: Splits, max_epochs: int = 12, patience: int = 3, batch_size: int = 64,
               lr: float = 0.1, weight_decay: float = 5e-5, label_smoothing: float = 0.1, seed: int = 0,
               model: nn.Module | None = None, augment: bool = True, part: str = "val",
               device: str | torch.device = "auto") -> TrainResult:
    """Train ``arch`` (or fine-tune ``model``) with SGD + cosine; stop when accuracy on ``part`` has not
    improved for ``patience`` epochs; return the best epoch's weights.

    ``patience`` 0: no early stopping; all ``max_epochs`` run (the cosine schedule ends at lr 0) and only
    the final weights are scored. Cheaper, and less noisy than picking the best of noisy epochs: the
    recipe of the benchmark's reference."""
    if part not in ("val", "test"):
        raise ValueError(f"part must be val or test, got {part!r}")
    dev = resolve_device(device)
    deterministic(dev)
    torch.manual_seed(seed)
    model = (model if model is not None else build_model(arch)).to(dev)
    ch, res = arch.space.in_channels, arch.resolution
    steps = max(1, len(splits.train) // batch_size) * max_epochs
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    best, best_epoch, best_state, epoch = -1.0, 0, None, 0
    with torch.enable_grad():
        for epoch in range(1, max_epochs + 1):
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            model.train()
            for x, y in splits.batches("train", batch_size, g, augment=augment, drop_last=True):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(splits.inputs(x, res, ch).to(dev)), y.to(dev),
                                label_smoothing=label_smoothing).backward()
                opt.step()
                sched.step()
            if patience <= 0 and epoch < max_epochs:
                continue  # scored once, at the end
            # exact BN statistics of the current weights: running averages lag badly on small data
            recalibrate_bn(model, model, splits, res, ch, batches=4, batch_size=batch_size, seed=seed)
            model.eval()
            acc = accuracy(model, splits, part, res, ch, device=dev)
            if acc > best:
                best, best_epoch = acc, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif patience > 0 and epoch - best_epoch >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(best, best_epoch, epoch, model.cpu().eval())  # callers export and measure on the CPU


@register_evaluator("train")
class EarlyStoppingEvaluator:
    """Validation accuracy (%) after a short training from scratch with early stopping.

    ``patience=0`` trains all ``max_epochs`` and scores the final weights; ``part=test`` scores on the
    test split: for a benchmark's reference only, never for a search (that would select on test)."""

    name = "train"

    def __init__(self, data: str | None = None, split_seed: int = 0, max_epochs: int = 12, patience: int = 3,
                 batch_size: int = 64, lr: float = 0.1, seed: int = 0, data_limit: int | None = None,
                 part: str = "val", device: str = "auto"):
        resolve_device(device)  # a device that is not there fails here, before any training
        if part not in ("val", "test"):
            raise EvaluatorError(f"train part= must be val or test, got {part!r}")
        self.data, self.split_seed = data, int(split_seed)
        self.data_limit = None if data_limit is None else int(data_limit)
        self.max_epochs, self.patience, self.batch_size = int(max_epochs), int(patience), int(batch_size)
        self.lr, self.seed, self.part, self.device = float(lr), int(seed), part, device
        for name, value, least in (("max_epochs", self.max_epochs, 1), ("batch_size", self.batch_size, 1),
                                   ("patience", self.patience, 0), ("data_limit", self.data_limit or 1, 1)):
            if value < least:  # max_epochs=0 divided by zero in the first generation
                raise EvaluatorError(f"train {name}= must be a whole number >= {least}, got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise EvaluatorError(f"train lr= must be a finite number > 0, got {lr!r}")

    def config(self) -> dict[str, Any]:
        return {**self._splits().config(), "max_epochs": self.max_epochs,
                "patience": self.patience, "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed,
                "torch": torch.__version__, **({} if self.part == "val" else {"part": self.part}),
                **({} if resolve_device(self.device).type == "cpu" else {"device": resolve_device(self.device).type})}

    def _splits(self) -> Splits:
        return load_data(require_data(self.data, "the train evaluator"), self.split_seed, limit=self.data_limit)

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        splits = self._splits()
        out = []
        for a in archs:
            splits.check_space(a.space.in_channels, a.space.num_classes)
            out.append(train_arch(a, splits, self.max_epochs, self.patience, self.batch_size, self.lr,
                                  seed=self.seed, part=self.part, device=self.device).best_val_acc)
        return out
