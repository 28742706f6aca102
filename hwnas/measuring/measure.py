"""Measure whole networks end-to-end with the profiler (and settings) a LUT was built with."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Sequence

from hwnas.latency.lut import LUT, fingerprint_diff
from hwnas.measuring.isolate import measure_arch, measure_isolated
from hwnas.spaces.base import SpaceArch
from hwnas.profilers import Measurement, Profiler, ProfilerUnavailable, create_profiler

AUTO_PIN = "auto"
_TARGET: dict[str, Any] = {}


@contextlib.contextmanager
def target_device(url: str | None, token_file: str | None = None) -> Iterator[None]:
    """Measure on the device whose agent listens at ``url`` (tcp://HOST:PORT) for the duration: every profiler
    option set made here (:func:`profiler_options`, :func:`lut_profiler_options`) names it, so the LUT build,
    calibration, drift reference, fidelity and finalize's verdict all time on that device. ``url`` None: the host.

    One switch rather than one more argument through each of those call chains: a path that forgot it would
    quietly measure the host again, which is what this exists to end."""
    saved = dict(_TARGET)
    _TARGET.clear()
    if url:
        _TARGET.update(device=url, token_file=token_file)
    try:
        yield
    finally:
        _TARGET.clear()
        _TARGET.update(saved)


def profiler_options(threads: int = 1, pin_cpu: int | str | None = AUTO_PIN, **extra: Any) -> dict[str, Any]:
    """Options for ``create_profiler``: ``threads``, and ``pin_cpu`` (``"auto"``: the rule of
    ``hwnas.profilers._host.auto_pin``, the last CPU when one thread; None: not pinned); ``extra`` (policy, ...) as given.

    The default settings of a new LUT (``hwnas profile``, the demo); pinning applies only inside measuring.
    """
    if pin_cpu == AUTO_PIN:
        from hwnas.profilers._host import auto_pin

        pin_cpu = auto_pin(threads)
    return {"threads": threads, "pin_cpu": pin_cpu, **_TARGET, **extra}


def lut_profiler_options(lut: LUT, **overrides: Any) -> dict[str, Any]:
    """The profiler options the LUT was built with: its thread count, and pinned (``"auto"``) if it was pinned.

    The one place measuring "as the LUT was built" is decided (measure, fidelity, finalize, drift, the CLI).
    ``overrides`` replace any of them; ``threads`` given without ``pin_cpu`` keeps the LUT's pinned-or-not,
    pinning by the rule for the threads given. Pinning applies only inside the measuring processes.
    """
    threads = int(overrides.pop("threads", lut.settings.get("threads", 1)))
    pinned = str(lut.settings.get("pinning", "")).startswith("pinned")
    from hwnas.measuring.pairing import pairing_options

    # an int8 (fp16) LUT measures int8 (fp16) models everywhere it is used, a batch-32 LUT batches of 32; fp32
    # and batch 1 are every profiler's defaults, so not passed (profilers without the options keep working)
    precision = {"precision": lut.precision} if lut.precision != "fp32" else {}
    batch = {"batch_size": lut.batch_size} if lut.batch_size != 1 else {}
    xnnpack = {"xnnpack": False} if lut.settings.get("xnnpack") is False else {}  # a litert-cpu LUT without XNNPACK
    return profiler_options(threads, overrides.pop("pin_cpu", AUTO_PIN if pinned else None),
                            **{**pairing_options(lut), **precision, **batch, **xnnpack, **overrides})


def available_profiler(name: str, options: dict[str, Any] | None = None, label: str = "profiler") -> Profiler:
    """``create_profiler(name, **options)``, or ProfilerUnavailable saying why it cannot run here."""
    options = options or {}
    if options.get("precision", "fp32") != "fp32":
        from hwnas.measuring.precision import PrecisionMismatch, kinds_of, profiler_precisions, takers
        from hwnas.profilers import get_profiler_class

        want, have = options["precision"], profiler_precisions(get_profiler_class(name))
        if want not in have:
            raise PrecisionMismatch(f"{label} {name!r} times {kinds_of(get_profiler_class(name), have)} only; "
                                    f"{want} needs a profiler that times it ({takers('precision', want)})")
    if options.get("batch_size", 1) != 1:
        from hwnas.measuring.precision import BatchSizeMismatch, profiler_batch_sizes, takers
        from hwnas.profilers import get_profiler_class

        if profiler_batch_sizes(get_profiler_class(name)) != "any":
            raise BatchSizeMismatch(f"{label} {name!r} times batch 1 only; batch {options['batch_size']} needs a "
                                    f"profiler that batches ({takers('batch_size')})")
    if options.get("device"):
        import inspect

        from hwnas.profilers import ProfilerConfigError, get_profiler_class

        if "device" not in inspect.signature(get_profiler_class(name)).parameters:
            raise ProfilerConfigError(f"{label} {name!r} times on this host; --device {options['device']} needs a "
                                      f"profiler that times model files on a device agent (ort-cpu, ort-mobile)")
    profiler = create_profiler(name, **options)
    reason = profiler.availability()
    if reason:
        raise ProfilerUnavailable(f"{label} {name!r} is unavailable here: {reason}")
    return profiler


def profiler_for(lut: LUT, name: str | None = None, **overrides: Any) -> Profiler:
    """The profiler the LUT was built with, with the LUT's settings (``lut_profiler_options``; any may be
    overridden), available here. ``name``: another profiler with the LUT's settings (``finalize --profiler``)."""
    name = name or lut.profiler
    return available_profiler(name, lut_profiler_options(lut, **overrides),
                              "the LUT's profiler" if name == lut.profiler else "profiler")


def warn_if_foreign(lut: LUT, profiler: Any, stream=sys.stderr) -> dict:
    """Loudly say which fingerprint fields differ: measured vs predicted is then not a fair comparison.

    The fingerprint describes the profiler's settings without applying them (this process is never pinned).
    """
    diff = fingerprint_diff(lut.fingerprint, profiler.fingerprint())
    if diff:
        lines = "\n".join(f"    {k}: LUT {a!r} vs here {b!r}" for k, (a, b) in diff.items())
        print(f"WARNING: measuring on a different device/profiler than the one that built {lut.path}; "
              f"measured and predicted latencies are not comparable:\n{lines}", file=stream)
    return diff


def in_process_settings(profiler: Any) -> contextlib.AbstractContextManager:
    """The profiler's pinning/threads while measuring in this process, this process's own afterwards.

    Profilers without ``applied()`` (outside plugins on the bare protocol) manage their own state.
    """
    return profiler.applied() if hasattr(profiler, "applied") else contextlib.nullcontext()


def arch_measurer(profiler_name: str, options: dict[str, Any], processes: int = 2,
                  progress: Any = None) -> Callable[[Sequence[SpaceArch]], list[Measurement]]:
    """A function that measures archs end-to-end: in ``processes`` fresh processes (lowest median kept),
    or in this process when ``processes`` is 0. ``progress`` (a tqdm bar) is advanced per result."""
    if processes <= 0:
        profiler = create_profiler(profiler_name, **options)

        def in_process(archs: Sequence[SpaceArch]) -> list[Measurement]:
            out = []
            with in_process_settings(profiler):
                for a in archs:
                    out.append(measure_arch(profiler, a))
                    if progress is not None:
                        progress.update(1)
            return out

        return in_process

    def isolated(archs: Sequence[SpaceArch]) -> list[Measurement]:
        if not archs:
            return []

        def tick(i: int, m: Measurement, p: int) -> None:
            if p > processes and progress.total is not None:
                progress.total += 1  # an extra pass for a network whose processes disagreed
            progress.update(1)

        return measure_isolated(profiler_name, options, "arch", [a.to_dict() for a in archs],
                                space_dict=archs[0].space.to_dict(), passes=processes, chunk=10,
                                on_result=tick if progress is not None else None)

    return isolated
