"""The search's second fidelity: the best candidates under the constraints, trained briefly and re-ranked.

A search scores hundreds of archs with a cheap evaluator; a budget then asks which
of the few best under it is really the most accurate, the question a cheap score
answers worst. ``hwnas search --refine K`` trains the K best feasible archs of a
finished run for a few epochs from scratch and re-ranks them by the mean rank of
their search score and that short training's validation accuracy
(:mod:`hwnas.evaluate.multifidelity`, measured in docs/evaluators.md). The pick is
recorded in ``refine.json`` beside the run; ``hwnas finalize --pick best`` takes
it. Each training is saved as it finishes: a killed refinement resumes.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.files import atomic_write_text
from hwnas.evaluate.multifidelity import DEFAULT_EPOCHS, vote_with_training
from hwnas.search.pareto import best_key
from hwnas.search.problem import Constraints
from hwnas.search.records import SearchRecord

REFINE_FILE = "refine.json"


class RefineError(InputError):
    """A refinement that cannot run as asked (no data, no feasible arch, a bad count)."""


@dataclass
class RefineCandidate:
    arch_id: str
    latency_ms: float
    score: float          # the search evaluator's
    trained_acc: float    # validation accuracy (%) after the short training
    vote: float           # mean rank over the candidates (higher is better)


@dataclass
class RefineResult:
    path: Path
    pick: str
    candidates: list[RefineCandidate]
    config: dict[str, Any]
    seconds: float
    trained_now: int = 0
    search_best: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What ``hwnas search --refine`` prints: each candidate, then the pick and whether it moved."""
        out = [f"refine: the {len(self.candidates)} best feasible archs trained {self.config['epochs']} epoch(s) "
               f"on {self.config['data']} ({self.trained_now} now, {len(self.candidates) - self.trained_now} saved) "
               f"in {self.seconds:.0f} s; re-ranked by mean rank of the search score and the short training:"]
        for c in sorted(self.candidates, key=lambda c: -c.vote):
            mark = "  <- pick" if c.arch_id == self.pick else ""
            out.append(f"  {c.arch_id}  predicted {c.latency_ms:.3f} ms  score {c.score:.4g}  "
                       f"short training {c.trained_acc:.2f} %  mean rank {c.vote:.1f}{mark}")
        moved = ("the same arch the search scored best" if self.pick == self.search_best else
                 f"the search's best by score alone was {self.search_best}")
        out.append(f"refined pick: {self.pick} ({moved}); written to {self.path}")
        return out


def refine_candidates(evals: dict[str, SearchRecord], constraints: Constraints, top: int) -> list[SearchRecord]:
    """The ``top`` best archs by the search's score among those meeting every constraint (failed ones out)."""
    ok = [r for r in evals.values() if math.isfinite(r.accuracy) and constraints.violation(r) <= 0]
    return sorted(ok, key=best_key, reverse=True)[:top]


def _check_counts(top: Any, epochs: Any) -> None:
    for name, value, least in (("--refine", top, 2), ("--refine-epochs", epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise RefineError(f"{name} must be a whole number >= {least}, got {value!r}")


def check_refine(top: Any, epochs: Any, data: str | None) -> None:
    """Refuse a refinement that cannot run, before a search begins: counts, and data to train on."""
    _check_counts(top, epochs)
    if data is None:
        raise RefineError("--refine trains the best candidates: give --data DATA, the images the model is for")


def refine_run(run_dir: str | Path, top: int = 8, epochs: int = DEFAULT_EPOCHS, data: str | None = None,
               seed: int = 0, command: str | None = None, log: Callable[[str], None] = print) -> RefineResult:
    """Train the ``top`` best feasible archs of the finished run in ``run_dir`` for ``epochs`` epochs on its data
    (or ``data``) and re-rank them; write ``refine.json`` (after each training, so a killed one resumes)."""
    from hwnas.evaluate.data import load_data
    from hwnas.evaluate.train import EarlyStoppingEvaluator
    from hwnas.search.runs import read_run

    _check_counts(top, epochs)  # the data is looked for below, in the run too
    start = time.perf_counter()
    run = read_run(run_dir)
    ev_cfg = run.config.get("evaluator_config") or {}
    data = data or run.config.get("data") or ev_cfg.get("data")
    if data is None:
        raise RefineError(f"{run.path}: refining trains the candidates, and the run records no data set; "
                          f"give --data DATA (the images the model is for)")
    limit = ev_cfg.get("data_limit") if data == ev_cfg.get("data") else None  # the run's images, as it read them
    space = run.space
    load_data(data, 0, limit=limit).check_space(space.in_channels, space.num_classes)
    constraints = Constraints(**run.config.get("constraints", {}))
    chosen = refine_candidates(run.evals, constraints, int(top))
    if not chosen:
        raise RefineError(f"{run.path}: no evaluated arch meets every constraint; nothing to refine")
    trainer = EarlyStoppingEvaluator(data=data, max_epochs=int(epochs), patience=0, seed=seed, data_limit=limit)
    config = {"top": int(top), "epochs": int(epochs), "data": data, "seed": seed, "train": trainer.config(),
              "search_evaluator": run.config.get("evaluator"), "combine": "mean rank over the candidates"}
    path = run.path / REFINE_FILE
    saved = _saved_trainings(path, config)
    trained_now = 0
    for i, r in enumerate(chosen, 1):
        if r.arch_id in saved:
            continue
        t = time.perf_counter()
        saved[r.arch_id] = float(trainer.evaluate([space.arch_from_dict(r.arch)])[0])
        trained_now += 1
        log(f"refine {i}/{len(chosen)}: {r.arch_id} {saved[r.arch_id]:.2f} % after {epochs} epoch(s) "
            f"({time.perf_counter() - t:.0f} s)")
        _write(path, config, saved, None, [], command)
    accs = [saved[r.arch_id] for r in chosen]
    votes = vote_with_training([r.accuracy for r in chosen], accs)
    cands = [RefineCandidate(r.arch_id, r.latency_ms, r.accuracy, a, v) for r, a, v in zip(chosen, accs, votes)]
    pick = max(zip(cands, chosen), key=lambda cr: (cr[0].vote, best_key(cr[1])))[0].arch_id
    _write(path, config, saved, pick, cands, command)
    return RefineResult(path, pick, cands, config, time.perf_counter() - start, trained_now, chosen[0].arch_id)


def _saved_trainings(path: Path, config: dict[str, Any]) -> dict[str, float]:
    """Trainings a killed refinement of the same configuration saved (another configuration's are not reused)."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("config") != json.loads(jsonio.dumps(config)):
        return {}
    trained = old.get("trained")
    return {str(k): float(v) for k, v in trained.items()} if isinstance(trained, dict) else {}


def _write(path: Path, config: dict[str, Any], trained: dict[str, float], pick: str | None,
           cands: list[RefineCandidate], command: str | None) -> None:
    atomic_write_text(path, jsonio.dumps({"config": config, "trained": trained, "pick": pick,
                                          "candidates": [asdict(c) for c in cands],
                                          "command": command or " ".join(sys.argv)}, indent=1))


def refined_pick(run_dir: Path) -> str | None:
    """The arch ``refine.json`` in ``run_dir`` picked (None: no finished refinement there)."""
    path = Path(run_dir) / REFINE_FILE
    if not path.is_file():
        return None
    try:
        pick = json.loads(path.read_text()).get("pick")
    except (OSError, ValueError, AttributeError):
        raise RefineError(f"{path} is damaged; delete it and run `hwnas search ... --resume --refine K` again, "
                          f"or give finalize --pick ARCH_ID") from None
    return pick if isinstance(pick, str) else None
