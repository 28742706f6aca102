"""Facts about the host and process settings shared by the CPU profilers."""
from __future__ import annotations

import ctypes
import os
import platform
import sys
from functools import lru_cache
from typing import Any

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_state: str | None = None


def malloc_plan() -> str:
    """What :func:`tune_malloc` does (or did) here, without doing it: fingerprints need it before any measuring."""
    if _malloc_state is not None:
        return _malloc_state
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return f"default ({platform.libc_ver()[0] or sys.platform}; not glibc, left alone)"
    return f"glibc mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"


def tune_malloc() -> str:
    """Stop glibc from returning and re-faulting large buffers on every call.

    With the default dynamic mmap threshold, a PyTorch CPU MobileNet block here
    ran 3-4x slow with ~1,300 minor page faults per call; fixed thresholds
    (the same as MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ in the
    environment) bring faults to 0. Returns a description for the fingerprint.
    """
    global _malloc_state
    if _malloc_state is not None:
        return _malloc_state
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        _malloc_state = f"default ({platform.libc_ver()[0] or sys.platform}; not glibc, left alone)"
        return _malloc_state
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except OSError:
        ok = False
    _malloc_state = (f"glibc mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
                     if ok else "glibc default (mallopt failed)")
    return _malloc_state


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's name (x86: its model name; Arm: its cores, named from their part numbers): the agent's rule."""
    from hwnas_agent.device import cpu_model as device_cpu_model

    return device_cpu_model()


@lru_cache(maxsize=1)
def cpu_flags() -> str:
    """The SIMD features that change kernel choice (AVX2/AVX-512/VNNI on x86, dotprod/i8mm on Arm): the agent's list."""
    from hwnas_agent.device import cpu_flags as device_cpu_flags

    return device_cpu_flags()


def host_fingerprint() -> dict[str, Any]:
    import numpy

    fp: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    for mod in ("torch", "onnxruntime", "onnx"):
        try:
            fp[mod] = __import__(mod).__version__
        except ImportError:
            fp[mod] = None
    return fp


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (and, with ``children``, of its largest finished child), MiB."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    if children:
        kib = max(kib, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kib / 1024


def auto_pin(threads: int) -> int | None:
    """The default pinning: one thread -> the last CPU this process may use (none with one CPU or more threads).

    The last one because the OS tends to put stray work on CPU 0; the same rule for LUT building,
    measuring and finalize keeps their numbers comparable.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return cpus[-1] if threads == 1 and len(cpus) > 1 else None


def pinning_plan(cpu: int | None) -> str:
    """What pinning to ``cpu`` means here, checked but not applied (for fingerprints and settings)."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        from hwnas.profilers.base import ProfilerConfigError

        raise ProfilerConfigError(f"cannot pin to CPU {cpu}: this process may use CPUs {allowed} "
                                  f"(--pin-cpu takes one of them, 'auto' or 'none')")
    return f"pinned to cpu {cpu}"


def pin_to_cpu(cpu: int | None) -> str:
    """Pin this process to one CPU (less migration noise). Returns what was done, for the fingerprint.

    Only a measuring process may call this: a pinned process that goes on to train or search runs
    all its threads on one core (seen: supernet training 50x slower).
    """
    plan = pinning_plan(cpu)
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    return plan


def process_state() -> tuple[frozenset[int] | None, int | None]:
    """This process's CPU affinity and torch thread count (None where unknown): what measuring may change."""
    aff = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    torch = sys.modules.get("torch")
    return aff, (torch.get_num_threads() if torch is not None else None)


def restore_process_state(state: tuple[frozenset[int] | None, int | None]) -> None:
    aff, threads = state
    if aff is not None and frozenset(os.sched_getaffinity(0)) != aff:
        os.sched_setaffinity(0, aff)
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
