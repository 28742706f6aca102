"""Measure in fresh processes, several times, and keep the lowest median.

Seen on this machine kind: a PyTorch CPU network measured 19.2 ms late in one
long-running process and 11.8-12.5 ms in three fresh ones; ORT networks
measured ~5 % apart between two processes. Timing repeated only inside one
process cannot see that. So LUT entries and whole networks are measured in
short-lived worker processes (a new one every ``chunk`` items), in ``passes``
passes with different orders, and each item keeps its calmest (lowest-median)
result: interference only ever adds time.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from hwnas.measuring.stability import AGREE, EXTRA_PASSES, agreeing, agreement_tolerance  # noqa: F401 - re-exported
from hwnas.profilers import Measurement, create_profiler
from hwnas.profilers._remote import REPLAY
from hwnas.spaces.blocks import build_model


def measure_arch(profiler: Any, arch: Any) -> Measurement:
    """End-to-end latency of the whole network, in this process."""
    return profiler.measure(build_model(arch), (1, arch.space.in_channels, arch.resolution, arch.resolution))


def _worker(profiler_name: str, options: dict[str, Any], kind: str, items: Sequence[Any],
            space_dict: dict | None) -> list[dict[str, Any]]:
    """Runs in a fresh process: build each module and time it."""
    import warnings

    warnings.filterwarnings("ignore")
    profiler = create_profiler(profiler_name, **options)
    if hasattr(profiler, "prepare"):
        profiler.prepare()  # this process only measures: pin and fix threads for its whole (short) life
    if kind == "layer":
        from hwnas.spaces.blocks import LayerDesc

        out = []
        for key in items:
            d = LayerDesc.from_key(key)
            out.append(profiler.measure(d.build(), d.input_shape).to_dict())
        return out
    if kind == "file":  # an ONNX/.ort file (ORT profilers)
        return [profiler.measure_onnx(path).to_dict() for path in items]
    from hwnas.spaces.base import space_from_dict

    space = space_from_dict(space_dict)
    if kind == "module":  # (state_dict file, arch dict): a finalized model with its weights
        import torch

        out = []
        for state, a in items:
            arch = space.arch_from_dict(a)
            model = build_model(arch)
            model.load_state_dict(torch.load(state, weights_only=True))
            shape = (1, space.in_channels, arch.resolution, arch.resolution)
            out.append(profiler.measure(model, shape).to_dict())
        return out
    return [measure_arch(profiler, space.arch_from_dict(a)).to_dict() for a in items]


def die_with_parent(parent: int) -> None:
    """A measuring worker's initializer: end when the process that started it ends. A transfer killed mid-way
    left its worker timing for 30-50 s more with parent 1 (and multiprocessing's resource tracker alive as long,
    since the worker held its pipe). Linux: the kernel sends SIGKILL when the parent goes (PR_SET_PDEATHSIG);
    elsewhere a thread checks every second. A parent already gone before this ran: exit now."""
    import signal

    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) != 0:  # 1: PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):  # no prctl (macOS): watch the parent instead
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def measure_isolated(profiler_name: str, options: dict[str, Any], kind: str, items: Sequence[Any], *,
                     space_dict: dict | None = None, passes: int = 2, chunk: int = 24,
                     on_result: Callable[[int, Measurement, int], None] | None = None,
                     agree: float | None = AGREE, extra_passes: int = EXTRA_PASSES) -> list[Measurement]:
    """Measure ``items``: layer keys (``layer``), arch dicts (``arch``), model files (``file``) or
    (state_dict file, arch dict) pairs (``module``); return the best per item.

    ``on_result(index, best_so_far, pass_number)`` is called as results arrive (to save and show progress).
    Passes alternate the order (forward, reversed, …) so an item meets different neighbours and processes.
    With ``passes`` >= 2, an item whose two lowest medians disagree by more than ``agree`` (or what the timing
    policy's precision allows: :func:`agreement_tolerance`) is measured in up to ``extra_passes`` more passes,
    until two agree. Seen on this machine kind: a whole network ran 1.6-1.8x
    slower for 0.1-0.7 s at a time, at random (another tenant on the core); a measurement inside such a
    spell is calm (low CV) but slow, and in a busy hour both passes of a calibration network fell in one.
    Two processes that agree are unlikely to both sit in one.
    """
    if str(options.get("device") or "").startswith(REPLAY):  # an offline bundle's recorded timings
        from hwnas.measuring.replay import replay

        return replay(options["device"], kind, items, space_dict, passes, on_result, agree, options)
    best: list[Measurement | None] = [None] * len(items)
    medians: list[list[float]] = [[] for _ in items]
    ctx = mp.get_context("spawn")

    def one_pass(p: int, todo: list[int]) -> None:
        order = todo[::-1] if p % 2 == 1 else list(todo)
        size = chunk if p % 2 == 0 else max(1, chunk - chunk // 3)  # shift chunk boundaries between passes
        with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for idx in _chunks(order, size):
                results = pool.submit(_worker, profiler_name, options, kind, [items[i] for i in idx],
                                      space_dict).result()
                for i, r in zip(idx, results):
                    m = Measurement(**r)
                    medians[i].append(m.median_ms)
                    if best[i] is None or m.median_ms < best[i].median_ms:
                        best[i] = m
                    if on_result is not None:
                        on_result(i, best[i], p + 1)

    for p in range(passes):
        one_pass(p, list(range(len(items))))
    if passes >= 2 and agree is not None:
        tolerance = agreement_tolerance(options, agree)
        for p in range(passes, passes + extra_passes):
            todo = [i for i in range(len(items)) if not agreeing(medians[i], tolerance)]
            if not todo:
                break
            one_pass(p, todo)
    return [m for m in best if m is not None]
