"""Accuracy predictor (Once-for-All style): an MLP on ``SpaceArch.encode()``.

Trained on (arch, score) pairs from any evaluator (supernet accuracy, short
training); once trained it scores thousands of archs per millisecond, which is
what a long evolutionary search needs. The held-out Kendall tau is reported
when it is trained, so nobody trusts it blindly.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.core.metrics import kendall_tau
from hwnas.spaces.base import Space, SpaceArch, space_from_dict


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: int = 400, layers: int = 3):
        super().__init__()
        dims = [n_in] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class FitReport:
    n_train: int
    n_val: int
    val_kendall_tau: float
    val_mae: float


def encode_batch(archs: Sequence[SpaceArch]) -> torch.Tensor:
    # float32 whatever the space's encoder returns (the cell space's is float64)
    return torch.as_tensor(archs[0].space.encode_many(archs), dtype=torch.float32) if archs else torch.zeros(0)


class AccuracyPredictor:
    def __init__(self, space: Space, hidden: int = 400, layers: int = 3, seed: int = 0):
        torch.manual_seed(seed)
        self.space = space
        self.model = MLP(space.encoding_size, hidden, layers).eval()
        self.hidden, self.layers = hidden, layers
        self.mean, self.std = 0.0, 1.0

    def _own(self, archs: Sequence[SpaceArch]) -> list[SpaceArch]:
        """Archs re-expressed in the space the MLP was trained on: a search over a LUT restricted to some
        resolutions has a smaller space (another encoding), yet its archs are archs of this one."""
        if not archs or archs[0].space.digest == self.space.digest:  # cached per space: cheap on the hot path
            return list(archs)
        src = f"arch for the accuracy predictor (trained on space {self.space.name!r})"
        return [self.space.arch_from_dict(a.to_dict(), source=src) for a in archs]

    @torch.no_grad()
    def predict(self, archs: Sequence[SpaceArch]) -> np.ndarray:
        return (self.model(encode_batch(self._own(archs))).numpy() * self.std + self.mean).astype(float)

    def fit(self, archs: Sequence[SpaceArch], scores: Sequence[float], epochs: int = 300, lr: float = 1e-3,
            val_frac: float = 0.2, seed: int = 0) -> FitReport:
        idx = list(range(len(archs)))
        random.Random(seed).shuffle(idx)
        n_val = max(1, int(len(idx) * val_frac)) if len(idx) >= 5 else 0
        val, train = idx[:n_val], idx[n_val:]
        y = np.asarray(scores, dtype=np.float32)
        self.mean, self.std = float(y[train].mean()), float(y[train].std() or 1.0)
        X = encode_batch(archs)
        Y = torch.tensor((y - self.mean) / self.std)
        torch.manual_seed(seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.model.train()
        with torch.enable_grad():
            for _ in range(epochs):
                opt.zero_grad()
                loss = nn.functional.mse_loss(self.model(X[train]), Y[train])
                loss.backward()
                opt.step()
        self.model.eval()
        if not val:
            return FitReport(len(train), 0, float("nan"), float("nan"))
        pred = self.predict([archs[i] for i in val])
        return FitReport(len(train), len(val), kendall_tau(pred, y[val]), float(np.abs(pred - y[val]).mean()))

    def save(self, path: str | Path) -> None:
        """Atomically (hwnas.core.files.atomic_write): a full disk or Ctrl-C leaves the old file, never half of one."""
        from hwnas.core.files import atomic_write

        blob = {"space": self.space.to_dict(), "hidden": self.hidden, "layers": self.layers,
                "mean": self.mean, "std": self.std, "state": self.model.state_dict()}
        atomic_write(Path(path), lambda f: torch.save(blob, f))

    @classmethod
    def load(cls, path: str | Path) -> "AccuracyPredictor":
        path = Path(path)
        from hwnas.core.jsonio import path_problem

        problem = path_problem(path, "an accuracy predictor", "a .pt file of `hwnas predictor --out`")
        if problem:
            raise EvaluatorError(problem)
        if not path.is_file():
            raise EvaluatorError(f"accuracy predictor {str(path)!r} does not exist; train one first")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            p = cls(space_from_dict(blob["space"]), blob["hidden"], blob["layers"])
            p.model.load_state_dict(blob["state"])
            p.mean, p.std = blob["mean"], blob["std"]
        except Exception as e:  # torch raises many types for truncated, foreign or edited files
            reason = (str(e).splitlines() or [""])[0][:160]
            raise EvaluatorError(f"{path}: not a readable hwnas accuracy predictor ({type(e).__name__}: {reason}); "
                                 f"fit it again with `hwnas predictor --checkpoint SUPERNET --out {path} --force`"
                                 ) from None
        return p


@register_evaluator("predictor")
class PredictorEvaluator:
    """The score a trained accuracy predictor (``hwnas predictor``: an MLP fitted on another evaluator's scores,
    e.g. the supernet's) predicts for each arch."""

    name = "predictor"

    def __init__(self, path: str | Path | None = None, predictor: AccuracyPredictor | None = None):
        if predictor is None and path is None:
            raise EvaluatorError("the predictor evaluator needs path=FILE (a trained accuracy predictor)")
        self.path = str(path) if path else None
        self.predictor = predictor or AccuracyPredictor.load(path)

    def config(self) -> dict[str, Any]:
        with torch.no_grad():
            digest = sum(float(p.abs().sum()) for p in self.predictor.model.parameters())
        return {"path": self.path, "weights_checksum": round(digest, 6)}

    def evaluate(self, archs: Sequence[SpaceArch]) -> list[float]:
        return self.predictor.predict(archs).tolist()


def fit_on_evaluator(space: Space, evaluator: Any, n_archs: int = 200, seed: int = 0,
                     exclude: Sequence[SpaceArch] = (), epochs: int = 300) -> tuple[AccuracyPredictor, FitReport, list[SpaceArch]]:
    """Sample ``n_archs`` distinct archs (none of ``exclude``), score them with ``evaluator`` (e.g. the
    supernet) and fit the MLP; the report's held-out Kendall tau says how far to trust it."""
    archs = space.sample_distinct(n_archs, random.Random(seed), exclude=[a.id for a in exclude])
    scores = evaluator.evaluate(archs)
    predictor = AccuracyPredictor(space, seed=seed)
    report = predictor.fit(archs, scores, epochs=epochs, seed=seed)
    return predictor, report, archs
