"""What finalize starts from: the picked arch of a run, the run's LUT, and the arch's weights."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from hwnas.evaluate.data import Splits, load_data
from hwnas.evaluate.scoring import recalibrate_bn
from hwnas.evaluate.supernet import CheckpointError, load_supernet
from hwnas.evaluate.train import train_arch
from hwnas.latency.lut import LUT
from hwnas.search.runs import Run, RunError
from hwnas.search.records import SearchRecord
from hwnas.spaces.base import SpaceArch

FinalizeError = RunError
"""Bad input to finalize (run directory, pick, checkpoint, output directory): one class with ``read_run``'s
errors (``hwnas.search.runs.RunError``), so ``except FinalizeError`` catches a bad run directory too."""



# Epochs a pick is trained from scratch when its run has no supernet: the reference recipe's (docs/reference).
TRAIN_EPOCHS = 12

def pick_record(run: Run, pick: str = "best") -> SearchRecord:
    """``best``: the pick of the run's refinement (``refine.json``, ``hwnas search --refine``) if it has one, else
    the best feasible arch of the front (``hwnas.search.pareto.best_record``, as ``best.json``); otherwise an
    arch id from the run."""
    if pick == "best":
        from hwnas.search.pareto import best_record
        from hwnas.search.refine import refined_pick

        refined = refined_pick(run.path)  # hwnas search --refine re-ranked the best candidates: its pick
        if refined is not None and refined in run.evals:
            return run.evals[refined]
        best = best_record(run.front)
        if best is None:
            raise FinalizeError(f"{run.path}: the front is empty (no architecture met every constraint); "
                                f"relax the constraints and search again, or --pick an ARCH_ID from the run")
        return best
    for r in run.front:
        if r.arch_id == pick:
            return r
    if pick in run.evals:
        return run.evals[pick]
    ids = ", ".join(r.arch_id for r in run.front[:10])
    raise FinalizeError(f"arch {pick!r} is not in run {run.path} ({len(run.evals)} archs evaluated); "
                        f"front: {ids or 'empty'}")


def resolve_lut(run: Run, lut: str | Path | None) -> LUT:
    candidates = [Path(lut)] if lut else [Path(run.config["lut"]), run.path / Path(run.config["lut"]).name]
    for c in candidates:
        if c.is_file():
            return LUT.load(c)
    raise FinalizeError(f"the run's LUT {run.config['lut']!r} was not found; pass it with --lut")


def check_lut_for_run(run: Run, lut: LUT, record: SearchRecord, arch: SpaceArch, accept_change: bool = False,
                      log: Any = print) -> dict[str, Any]:
    """Refuse, before any export, a LUT that cannot price the picked arch (built for another space) or whose
    content is no longer what the run was searched with (unless ``accept_change``: then say so).

    Returns what the report records: the LUT's content digest, the run's, and whether they match."""
    from hwnas.latency.lut import content_digest, content_table, describe_change
    from hwnas.latency.predict import latency_predictor

    keys = [d.key for d in arch.layers()]
    missing = lut.missing(keys)
    if missing:
        lut_space = lut.space.get("name", "?")
        lut_kind = lut.space.get("kind", "mbv3")
        why = (f"it was built for space {lut_space!r} (kind {lut_kind}), the run searched {run.space.name!r} "
               f"(kind {run.space.kind})" if (lut_space, lut_kind) != (run.space.name, run.space.kind) else
               "it lacks blocks the run was searched with")
        raise FinalizeError(f"the LUT {lut.path} has no entry for {len(missing)} of the {len(keys)} blocks of arch "
                            f"{arch.id}: {why}; give the LUT the run was searched with ({run.config['lut']}) with "
                            f"--lut")
    table = content_table(lut)
    digest, began = content_digest(table), run.config.get("lut_digest")
    now_ms = float(latency_predictor(lut, arch.space).predict(arch))
    same_prediction = abs(now_ms - record.latency_ms) <= 1e-6 * max(abs(record.latency_ms), 1e-9)
    info = {"digest": digest, "run_digest": began, "matches_run": began == digest if began else None}
    if began is None:  # a run from before digests were recorded: the pick's prediction is all there is to compare
        if not same_prediction:
            log(f"WARNING: the LUT {lut.path} predicts {now_ms:.4g} ms for arch {arch.id}, the search predicted "
                f"{record.latency_ms:.4g} ms: is it the LUT the run was searched with? (the run is from before "
                f"runs recorded their LUT's digest, so its content cannot be checked)")
        return info
    if began == digest:
        return info
    what = describe_change(run.lut_table, table)
    said = (f"the LUT {lut.path} is not the one run {run.path} was searched with: {what} (content digest {began} "
            f"then, {digest} now); the search predicted {record.latency_ms:.4g} ms for arch {arch.id}, this LUT "
            f"{now_ms:.4g} ms")
    if not accept_change:
        raise FinalizeError(f"{said}. Give the run's LUT with --lut, search again with this one, or add "
                            f"--accept-lut-change to finalize with it (the report then says so)")
    log(f"WARNING: {said}; going on (--accept-lut-change): the report records the mismatch")
    return info


def inherited_model(run: Run, arch: SpaceArch, checkpoint: str | Path | None, splits: Splits | None,
                    data: str | None, seed: int = 0,
                    train_epochs: int = TRAIN_EPOCHS) -> tuple[nn.Module, Splits, dict[str, Any]]:
    """The arch with the supernet's weights (BN recalibrated); or trained from scratch, at most ``train_epochs``
    epochs (early stopping on the validation split), when the run has no supernet (e.g. a proxy search) and
    none is given."""
    ev_cfg = run.config.get("evaluator_config", {})
    ckpt = checkpoint or ev_cfg.get("checkpoint")
    if ckpt:
        from hwnas.core.jsonio import path_problem

        problem = path_problem(ckpt, "a supernet checkpoint")
        if problem:
            raise FinalizeError(f"{problem}; pass one with --checkpoint")
        if not Path(ckpt).is_file():
            raise FinalizeError(f"the supernet checkpoint {str(ckpt)!r} is missing; pass another with --checkpoint, "
                                f"or train it again with `hwnas supernet`")
        try:
            net, blob = load_supernet(ckpt)
        except CheckpointError as e:
            raise FinalizeError(str(e)) from None
        trained_on = blob["config"]["data"]
        splits = splits or load_data(data or trained_on, blob["config"]["split_seed"],
                                     limit=blob["config"].get("data_limit") if (data or trained_on) == trained_on
                                     else None)
        net.check(arch)
        splits.check_space(arch.space.in_channels, arch.space.num_classes)
        ch = arch.space.in_channels
        recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, ch, batches=4, seed=seed)
        model = net.extract(arch).eval()
        return model, splits, {"source": "supernet", "checkpoint": str(Path(ckpt).resolve()),
                               "supernet_epochs": blob["epochs_done"]}
    searched_on = ev_cfg.get("data") or run.config.get("data")
    if data is None and searched_on is None:
        raise FinalizeError(f"run {run.path} was searched with {run.config.get('evaluator')}, which reads no images, "
                            f"and records no data set; give --data DATA, the images the model is for (finalize "
                            f"trains the pick on them from scratch: the run has no supernet)")
    splits = splits or load_data(data or searched_on, ev_cfg.get("split_seed", 0),
                                 limit=ev_cfg.get("data_limit") if (data or searched_on) == searched_on else None)
    splits.check_space(arch.space.in_channels, arch.space.num_classes)
    r = train_arch(arch, splits, max_epochs=train_epochs, patience=min(3, train_epochs), seed=seed)
    return r.model, splits, {"source": "trained from scratch (the run used no supernet)",
                             "epochs": r.epochs_run}
