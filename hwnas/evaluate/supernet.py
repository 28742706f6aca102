"""Weight-sharing supernets of every kind: build one for a space (its kind's ``parts.supernet``), train it with
the sandwich rule, store and load checkpoints, and the ``supernet`` evaluator.

Trained with the sandwich rule (largest, smallest and random subnets every step) and in-place distillation
from the largest. A subnet's BN statistics are recalibrated on training batches before it is evaluated,
because running statistics shared across subnets fit none of them.

The kinds' supernets live in their own modules: ``hwnas.evaluate.mbv3_supernet.MBv3Supernet`` (elastic depth,
kernel and expand, Once-for-All style), ``hwnas.evaluate.cell_supernet.CellSupernet`` and
``hwnas.evaluate.darts_supernet.DartsSupernet`` (DARTS's search cells); training,
checkpoints, loading and the evaluator below serve every kind through the methods they share (``largest``,
``smallest``, ``students``, ``check``, ``forward``, ``extract``).
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.core.progress import milestone, progress as progress_bar
from hwnas.core.errors import InputError
from hwnas.evaluate.base import EvaluatorError, register_evaluator
from hwnas.evaluate.data import Splits, load_data, require_data
from hwnas.evaluate.device import cpu_layout, deterministic, device_of, resolve_device, to_cpu
from hwnas.evaluate.scoring import accuracy, recalibrate_bn
from hwnas.core.files import atomic_write
from hwnas.spaces.base import kind_part, space_from_dict

CHECKPOINT_FORMAT = "hwnas-supernet"
CHECKPOINT_VERSION = 1


# how random subnets are drawn: "uniform" (any kind); "connected" and "fair" are the cell supernet's
SAMPLINGS = ("uniform", "connected", "fair")


class CheckpointError(InputError):
    """A supernet checkpoint is missing, corrupt, foreign or does not match the request."""


SPACE_LABELS = ("resolutions", "name", "description")  # a supernet's weights fit any input size; names are labels


def check_arch_space(space: Any, arch: Any, arch_type: type) -> None:
    """Refuse, naming the fields that differ, an arch that is not an ``arch_type`` of ``space`` (up to its
    ``SPACE_LABELS``): a supernet holds the weights of its own space's archs only."""
    theirs = getattr(arch, "space", None)
    mine = {k: v for k, v in space.to_dict().items() if k not in SPACE_LABELS}
    other = {} if theirs is None else {k: v for k, v in theirs.to_dict().items() if k not in SPACE_LABELS}
    if not isinstance(arch, arch_type) or mine != other:
        diff = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
        raise CheckpointError(f"arch {getattr(arch, 'id', '?')} comes from space {getattr(theirs, 'name', '?')!r}, "
                              f"which differs from the supernet's space {space.name!r} in {', '.join(diff)}")


def build_supernet(space: Any, width: float | None = None) -> nn.Module:
    """The weight-sharing supernet of ``space``'s kind (its ``parts.supernet``: ``MBv3Supernet`` for mbv3,
    ``CellSupernet`` for cells); a kind without one is refused with what to use instead."""
    cls = kind_part(space, "supernet")
    if cls is None:
        raise EvaluatorError(f"space {space.name!r} (kind {getattr(space, 'kind', '?')}) has no weight-sharing "
                             "supernet; use a proxy evaluator (proxy:synflow) or train:short")
    return cls(space, width)


def default_sampling(space: Any) -> str:
    """How the supernet of ``space``'s kind samples paths unless told (``fair`` for cells, else ``uniform``)."""
    return kind_part(space, "supernet_sampling") or "uniform"


@dataclass(frozen=True)
class SupernetConfig:
    """Everything that decides the trained weights (stored in the checkpoint; resume must match)."""

    data: str | None = None  # required: hwnas never picks a data set for the user
    split_seed: int = 0
    data_limit: int | None = None  # images per class kept before the train/val/test split (None: all)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    random_subnets: int = 2
    augment: bool = True
    seed: int = 0
    width: float | None = None
    distill: bool = True         # random subnets learn the largest's soft labels (False: the true labels)
    sampling: str = "uniform"    # random subnets: "uniform", or "connected" (cell spaces: skip dead cells),
    #                              or "fair" (cell, darts spaces: FairNAS, one subnet per op, every op once a step)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CheckpointError(f"supernet {name} must be a whole number >= 1, got {v!r}")
        if self.data_limit is not None and (isinstance(self.data_limit, bool) or not isinstance(self.data_limit, int)
                                            or self.data_limit < 1):
            raise CheckpointError(f"supernet data_limit must be a whole number >= 1 (images per class), "
                                  f"got {self.data_limit!r}")
        if self.sampling not in SAMPLINGS:
            raise CheckpointError(f"supernet sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if not isinstance(self.distill, bool):
            raise CheckpointError(f"supernet distill must be true or false, got {self.distill!r}")
        if self.random_subnets < 0:
            raise CheckpointError(f"supernet random_subnets must be >= 0, got {self.random_subnets!r}")
        for name in ("lr", "momentum", "weight_decay", "label_smoothing"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise CheckpointError(f"supernet {name} must be a finite number{' > 0' if name == 'lr' else ' >= 0'}, "
                                      f"got {v!r}")


@dataclass
class TrainReport:
    checkpoint: Path
    epochs_done: int
    resumed_from: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"


def stored_config(blob: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's SupernetConfig as a dict; a field added since it was written counts at its default
    (``data_limit``: None; ``distill``: True; ``sampling``: uniform), so older checkpoints still resume and
    are still recognised as done."""
    return {**asdict(SupernetConfig()), **blob["config"]}


def settings_diff(blob: dict[str, Any], space: Any, config: SupernetConfig, splits: Splits) -> str:
    """What differs between a checkpoint and a resume of it, named: "epochs 1 in the checkpoint, 2 now"."""
    was, now = stored_config(blob), asdict(config)
    out = [f"{k} {was.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in sorted(set(was) | set(now))
           if was.get(k) != now.get(k)]
    if blob["space"] != space.to_dict():
        name = blob["space"].get("name") if isinstance(blob["space"], dict) else None
        out.insert(0, f"space {name!r} in the checkpoint, {space.name!r} now" if name != space.name
                   else f"the definition of space {space.name!r}")
    if blob["data"]["data_digest"] != splits.digest:
        out.append(f"the data's content (digest {blob['data']['data_digest']} in the checkpoint, {splits.digest} now)")
    return "; ".join(out) or "space, data or config"


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(1).mean()


def train_supernet(space: Any, out: str | Path, config: SupernetConfig = SupernetConfig(),
                   resume: bool = False, force: bool = False, progress: bool = True,
                   command: str | None = None, stop_after: int | None = None,
                   device: str | torch.device = "auto") -> TrainReport:
    """Train (or resume) a supernet of ``space`` (any kind: ``build_supernet`` builds the kind's supernet); the
    checkpoint at ``out`` is rewritten after every epoch.

    Every step: the largest arch on the labels, then ``net.students`` (MBv3: the smallest and
    ``random_subnets`` random archs; cells: the random ones) on the largest's soft labels (in-place
    distillation; ``distill=False``: on the labels too). ``sampling="fair"`` (cell spaces only) is
    FairNAS: one student per op of the space, each op of each edge in exactly one of them, gradients
    summed into one optimizer step; the largest arch runs only as the teacher when ``distill`` is on
    (FairNAS itself, ``distill=False``, trains every student on the labels and no largest arch: any
    extra pass of ``conv3x3`` would break the fairness).

    ``stop_after`` ends this call after that many epochs in all (train in chunks; resume later).
    ``device``: where to train (``auto``: a CUDA GPU when there is one); the checkpoint is always stored
    on the CPU, so it resumes and loads on any machine.
    """
    from hwnas import __version__

    out = Path(out)
    start = time.perf_counter()
    splits = load_data(require_data(config.data, "training a supernet"), config.split_seed, limit=config.data_limit)
    splits.check_space(space.in_channels, space.num_classes)
    dev = resolve_device(device)
    deterministic(dev)
    torch.manual_seed(config.seed)
    net = cpu_layout(build_supernet(space, config.width).to(dev), dev)
    steps_per_epoch = max(1, len(splits.train) // config.batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.epochs * steps_per_epoch)
                                           / (config.epochs * steps_per_epoch))))
    history: list[dict[str, float]] = []
    first_epoch = 0
    if out.exists():
        if resume:
            blob = read_checkpoint(out)
            if blob["space"] != space.to_dict() or stored_config(blob) != asdict(config) \
                    or blob["data"]["data_digest"] != splits.digest:
                differ = settings_diff(blob, space, config, splits)
                raise CheckpointError(f"{out} was trained with other settings ({differ}); resume with the same "
                                      f"ones, or start over with --force")
            net.load_state_dict(blob["state"])
            opt.load_state_dict(blob["optimizer"])  # moves the optimizer state to the weights' device
            sched.load_state_dict(blob["scheduler"])
            history, first_epoch = blob["history"], blob["epochs_done"]
        elif not force:
            raise CheckpointError(f"{out} already exists; add --resume to continue training it, "
                                  f"or --force to start over")
    elif resume:
        print(f"note: {out} does not exist yet; starting a new supernet", file=sys.stderr)

    ch = space.in_channels
    largest, smallest = net.largest(), net.smallest()
    fair = config.sampling == "fair"
    if fair and not getattr(net, "fair_sampling", False):  # only a supernet that says so samples fairly (cells)
        raise CheckpointError(f"sampling fair is for cell spaces (the kinds whose supernet draws one path per op: "
                              f"cell, darts); space {space.name!r} is of kind "
                              f"{getattr(space, 'kind', '?')}: use uniform")
    teach = config.distill or not fair  # fair without distillation: no largest-arch pass (FairNAS)
    total = config.epochs * steps_per_epoch
    bar = progress_bar(total=total, initial=first_epoch * steps_per_epoch, desc="training supernet", unit="step",
                       disable=not progress, dynamic_ncols=True, every=0)  # lines: one per epoch (milestone below)
    try:
        last = config.epochs if stop_after is None else min(config.epochs, stop_after)
        for epoch in range(first_epoch, last):
            # RNG streams derived from (seed, epoch): resuming at an epoch boundary replays exactly.
            g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            rng = random.Random(config.seed * 100_003 + epoch)
            net.train()
            loss_sum = correct = seen = 0.0
            for x, y in splits.batches("train", config.batch_size, g, augment=config.augment, drop_last=True):
                y = y.to(dev)
                opt.zero_grad(set_to_none=True)
                tracked = []  # (loss, logits) the epoch's loss and train accuracy report: the largest's
                if teach:
                    logits = net(splits.inputs(x, largest.resolution, ch).to(dev), largest)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                    loss.backward()
                    teacher = F.softmax(logits.detach(), dim=1)
                    tracked.append((loss.detach(), logits.detach()))
                for sub in net.students(rng, config.random_subnets, config.sampling):
                    out_sub = net(splits.inputs(x, sub.resolution, ch).to(dev), sub)
                    if config.distill:
                        soft_cross_entropy(out_sub, teacher).backward()
                    else:
                        loss = F.cross_entropy(out_sub, y, label_smoothing=config.label_smoothing)
                        loss.backward()
                        if not teach:  # no largest arch: report the students' mean
                            tracked.append((loss.detach(), out_sub.detach()))
                opt.step()
                sched.step()
                loss_sum += sum(float(l) for l, _ in tracked) / len(tracked) * len(y)
                correct += sum(float((o.argmax(1) == y).sum()) for _, o in tracked) / len(tracked)
                seen += len(y)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{loss_sum / seen:.3f}",
                                acc=f"{100 * correct / seen:.1f}%")
            row = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": 100 * correct / seen,
                   "lr": sched.get_last_lr()[0]}
            row["val_acc_largest"] = evaluate_subnet(net, largest, splits)
            row["val_acc_smallest"] = evaluate_subnet(net, smallest, splits)
            history.append(row)
            bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{row['loss']:.3f}",
                            val=f"{row['val_acc_largest']:.1f}/{row['val_acc_smallest']:.1f}%")
            milestone(bar, f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.3f}, train accuracy "
                           f"{row['train_acc']:.1f} %, validation accuracy largest {row['val_acc_largest']:.1f} %, "
                           f"smallest {row['val_acc_smallest']:.1f} %")
            checkpoint = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "space": space.to_dict(),
                          "width": getattr(net, "width", None), "config": asdict(config), "data": splits.config(),
                          "state": to_cpu(net.state_dict()), "optimizer": to_cpu(opt.state_dict()),
                          "scheduler": sched.state_dict(),
                          "epochs_done": epoch + 1, "history": history, "hwnas_version": __version__,
                          "torch": str(torch.__version__), "command": command or " ".join(sys.argv)}
            atomic_write(out, lambda f: torch.save(checkpoint, f))
    finally:
        bar.close()
    return TrainReport(out, len(history), first_epoch, time.perf_counter() - start, history, str(dev))


def evaluate_subnet(net: nn.Module, arch: Any, splits: Splits, part: str = "val", bn_batches: int = 4,
                    batch_size: int = 64, seed: int = 0) -> float:
    """Accuracy (%) of one subnet after recalibrating its BN statistics; leaves the net in eval mode."""
    ch = net.space.in_channels
    recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, ch, bn_batches, batch_size, seed)
    net.eval()
    return accuracy(lambda x: net(x, arch), splits, part, arch.resolution, ch, device=device_of(net))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    from hwnas.core.jsonio import path_problem

    problem = path_problem(path, "a supernet checkpoint", "a .pt file of `hwnas supernet --out`")
    if problem:  # not "does not exist; train one there"
        raise CheckpointError(problem)
    if not path.is_file():
        raise CheckpointError(f"supernet checkpoint {str(path)!r} does not exist; train one with "
                              f"`hwnas supernet --space SPACE --data DATA --out {path}`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        from hwnas.evaluate.base import transient

        if transient(e):  # the machine failed (memory, I/O), not the file: the run stops and resumes later
            raise
        raise CheckpointError(f"{path}: not a readable supernet checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); train it again (same command with --force)") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an hwnas supernet checkpoint")
    if blob.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {blob.get('version')} is not supported "
                              f"(this hwnas reads version {CHECKPOINT_VERSION})")
    return blob


def load_supernet(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The supernet in a checkpoint (an ``MBv3Supernet`` or, for a cell space, a ``CellSupernet``), in eval mode,
    on the CPU in the layout it trained in there (``cpu_layout``)."""
    blob = read_checkpoint(path)
    space = space_from_dict(blob["space"], source=f"{path}: space")
    net = build_supernet(space, blob["width"])
    net.load_state_dict(blob["state"])
    return cpu_layout(net, torch.device("cpu")).eval(), blob


@register_evaluator("supernet")
class SupernetEvaluator:
    """Validation accuracy (%) of each arch with weights inherited from a trained supernet.

    ``device`` is ``cpu`` by default, so a seed gives the same front on every machine; ``auto``/``cuda``
    evaluates on a GPU (faster, scores may differ in the last digits)."""

    name = "supernet"

    def __init__(self, checkpoint: str | Path, data: str | None = None, bn_batches: int = 4,
                 batch_size: int = 64, seed: int = 0, part: str = "val", device: str = "cpu"):
        if part not in ("val", "test"):
            raise EvaluatorError("part must be val or test (the search uses val; test is for finalize)")
        self.checkpoint, self.device = str(checkpoint), device
        resolve_device(device)  # a device that is not there fails here, before the search starts
        blob = read_checkpoint(checkpoint)
        self.data = data or blob["config"]["data"]
        self.split_seed = blob["config"]["split_seed"]
        # the images the supernet trained on; another --data is scored whole
        self.data_limit = blob["config"].get("data_limit") if self.data == blob["config"]["data"] else None
        self.epochs_done = blob["epochs_done"]
        self.bn_batches, self.batch_size, self.seed, self.part = int(bn_batches), int(batch_size), int(seed), part
        self._net: nn.Module | None = None
        self._space = blob["space"]

    def check_space(self, space: Any) -> None:
        """Refuse, before the search starts, a checkpoint whose supernet is of another space than the searched one
        (it failed on the first arch, naming the arch rather than the checkpoint)."""
        mine = space_from_dict(self._space, source=f"{self.checkpoint}: space")
        a = {k: v for k, v in mine.to_dict().items() if k not in SPACE_LABELS}
        b = {k: v for k, v in space.to_dict().items() if k not in SPACE_LABELS}
        if mine.kind == space.kind and a == b:
            return
        how = (f" (they differ in {', '.join(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))})"
               if mine.kind == space.kind else "")
        raise CheckpointError(f"{self.checkpoint}: a supernet of space {mine.name!r} (kind {mine.kind}), but the "
                              f"search is over {space.name!r} (kind {space.kind}){how}; train one for it (hwnas "
                              f"supernet --space {space.name} --out NEW.pt) and give --evaluator-option "
                              f"checkpoint=NEW.pt")

    def __getstate__(self) -> dict[str, Any]:  # workers reload the weights themselves
        return {**self.__dict__, "_net": None}

    def config(self) -> dict[str, Any]:
        return {"checkpoint": os.path.abspath(self.checkpoint), "epochs_done": self.epochs_done, "data": self.data,
                "split_seed": self.split_seed, "bn_batches": self.bn_batches, "batch_size": self.batch_size,
                "seed": self.seed, "part": self.part,
                **({} if self.data_limit is None else {"data_limit": self.data_limit})}

    @property
    def net(self) -> nn.Module:
        if self._net is None:
            net, _ = load_supernet(self.checkpoint)
            dev = resolve_device(self.device)
            self._net = cpu_layout(net.to(dev), dev)
        return self._net

    def evaluate(self, archs: Sequence[Any]) -> list[float]:
        splits = load_data(self.data, self.split_seed, limit=self.data_limit)
        out = []
        for a in archs:
            self.net.check(a)
            out.append(evaluate_subnet(self.net, a, splits, self.part, self.bn_batches, self.batch_size, self.seed))
        return out
