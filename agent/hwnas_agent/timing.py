"""The timing loop every hwnas measurement goes through, on the host and on a device.

It lives in the agent package (which needs only numpy) so that the local profilers and the device agent
time with the same code: warm-up, batched samples for fast calls, sampling until the median is stable,
median/p10/p90/CV. hwnas re-exports it as ``hwnas.profilers.base``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np

try:
    import resource
except ImportError:  # not on Windows: page faults are then not counted
    resource = None


@dataclass(frozen=True)
class Measurement:
    """Latency statistics of one module, in milliseconds per call.

    ``cv`` is std/mean of the samples; ``robust_cv`` is 1.4826 * MAD / median,
    which one preempted sample does not inflate (it decides re-measuring);
    ``minflt_per_call`` counts minor page
    faults per call (non-zero values flag the glibc-malloc trap on PyTorch CPU).
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    n: int
    calls_per_sample: int
    minflt_per_call: float = 0.0
    robust_cv: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_samples(cls, samples_ms: list[float], calls_per_sample: int, minflt_per_call: float = 0.0) -> "Measurement":
        a = np.asarray(samples_ms, dtype=float)
        mean = float(a.mean())
        std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        p10, med, p90 = (float(v) for v in np.percentile(a, [10, 50, 90]))
        rcv = 1.4826 * float(np.median(np.abs(a - med))) / med if med > 0 else 0.0
        return cls(med, p10, p90, mean, std, std / mean if mean > 0 else 0.0, len(a), calls_per_sample,
                   minflt_per_call, rcv)


@dataclass(frozen=True)
class TimingPolicy:
    """How long and how often to time; the defaults suit 10 us - 100 ms blocks on a CPU."""

    warmup_s: float = 0.05
    min_warmup_calls: int = 5
    min_sample_s: float = 0.0005   # batch very fast calls so timer overhead stays < 1 %
    min_samples: int = 15
    min_time_s: float = 0.15
    max_time_s: float = 1.0
    target_rel_ci: float = 0.01    # stop once the median's 95 % CI is within +-1 %

    @classmethod
    def of(cls, value: "TimingPolicy | dict[str, Any] | None") -> "TimingPolicy":
        """The policy given as profiler options or a LUT's settings hold it: itself, its dict form (unknown keys
        ignored), or None for the default."""
        if isinstance(value, cls):
            return value
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (value or {}).items() if k in known})

    @classmethod
    def quick(cls) -> "TimingPolicy":
        """Short runs for tests and previews: noisier, ~10x faster."""
        return cls(warmup_s=0.01, min_warmup_calls=3, min_samples=7, min_time_s=0.02, max_time_s=0.1,
                   target_rel_ci=0.03)


def time_callable(fn: Callable[[], Any], policy: TimingPolicy = TimingPolicy(),
                  sync: Callable[[], None] | None = None,
                  sample_timer: Callable[[Callable[[], Any], int], float] | None = None) -> Measurement:
    """Warm up, then sample until the median is stable (or the time cap), and summarise.

    ``sample_timer(fn, calls)`` may replace the host clock (CUDA events); it returns ms per call.
    """
    sync = sync or (lambda: None)

    def host_timer(f: Callable[[], Any], calls: int) -> float:
        sync()
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            f()
        sync()
        return (time.perf_counter_ns() - t0) / 1e6 / calls

    timer = sample_timer or host_timer
    start = time.perf_counter()
    calls, per_call = 0, []
    while calls < policy.min_warmup_calls or time.perf_counter() - start < policy.warmup_s:
        per_call.append(timer(fn, 1))
        calls += 1
    est_ms = float(np.median(per_call[len(per_call) // 2:]))
    batch = max(1, math.ceil(policy.min_sample_s * 1e3 / max(est_ms, 1e-6)))

    samples: list[float] = []
    f0 = _minflt()
    t_start = time.perf_counter()
    while True:
        samples.append(timer(fn, batch))
        elapsed = time.perf_counter() - t_start
        n = len(samples)
        if elapsed >= policy.max_time_s and n >= min(policy.min_samples, 5):
            break
        if n >= policy.min_samples and elapsed >= policy.min_time_s:
            med = float(np.median(samples))
            mad = float(np.median(np.abs(np.asarray(samples) - med)))
            rel_ci = 1.96 * 1.2533 * 1.4826 * mad / math.sqrt(n) / med if med > 0 else 0.0
            if rel_ci <= policy.target_rel_ci:
                break
    faults = _minflt() - f0
    return Measurement.from_samples(samples, batch, faults / (len(samples) * batch))


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


@dataclass(frozen=True)
class Paired:
    """An item timed in alternation with a fixed reference in the same process: ``item`` and ``reference`` are
    their own samples' statistics (ms), ``ratio`` the statistics of item/reference per adjacent sample pair."""

    item: Measurement
    reference: Measurement
    ratio: Measurement
    _ratios: tuple = ()

    def normalized(self, reference_calm_ms: float) -> Measurement:
        """The item's latency with the device as calm as when the reference measured ``reference_calm_ms``:
        each sample's ratio times that, so median, spread and CV are of the spell-free figure."""
        return Measurement.from_samples([float(r) * reference_calm_ms for r in self._ratios],
                                        self.item.calls_per_sample, self.item.minflt_per_call)


def time_paired(fn: Callable[[], Any], reference: Callable[[], Any],
                policy: TimingPolicy = TimingPolicy()) -> Paired:
    """Alternate samples of ``fn`` and ``reference`` (each batched to ``min_sample_s``), so a slow spell of the
    device (another tenant, throttling) that stretches one stretches its neighbour too, and their ratio stays.
    Stops when the median ratio's 95 % CI is within the policy's target (or at its time cap)."""
    def per_call(f: Callable[[], Any], calls: int) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            f()
        return (time.perf_counter_ns() - t0) / 1e6 / calls

    start, warm_f, warm_r = time.perf_counter(), [], []
    while len(warm_f) < policy.min_warmup_calls or time.perf_counter() - start < policy.warmup_s:
        warm_f.append(per_call(fn, 1))
        warm_r.append(per_call(reference, 1))
    batch_f = max(1, math.ceil(policy.min_sample_s * 1e3 / max(float(np.median(warm_f[len(warm_f) // 2:])), 1e-6)))
    batch_r = max(1, math.ceil(policy.min_sample_s * 1e3 / max(float(np.median(warm_r[len(warm_r) // 2:])), 1e-6)))
    fs: list[float] = []
    rs: list[float] = []
    ratios: list[float] = []
    t_start = time.perf_counter()
    while True:
        a = per_call(fn, batch_f)
        b = per_call(reference, batch_r)
        fs.append(a)
        rs.append(b)
        ratios.append(a / b if b > 0 else float("inf"))
        elapsed, n = time.perf_counter() - t_start, len(ratios)
        if elapsed >= policy.max_time_s and n >= min(policy.min_samples, 5):
            break
        if n >= policy.min_samples and elapsed >= policy.min_time_s:
            med = float(np.median(ratios))
            mad = float(np.median(np.abs(np.asarray(ratios) - med)))
            if med > 0 and 1.96 * 1.2533 * 1.4826 * mad / math.sqrt(n) / med <= policy.target_rel_ci:
                break
    return Paired(Measurement.from_samples(fs, batch_f), Measurement.from_samples(rs, batch_r),
                  Measurement.from_samples(ratios, 1), tuple(ratios))


def time_maybe_paired(fn: Callable[[], Any], policy: TimingPolicy, pair: Any = None) -> Measurement:
    """``time_callable``, or with ``pair`` = (reference callable, its calm ms) the paired, normalised figure."""
    if pair is None:
        return time_callable(fn, policy)
    reference, calm_ms = pair
    return time_paired(fn, reference, policy).normalized(calm_ms)
