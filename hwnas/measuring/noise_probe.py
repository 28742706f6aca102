"""How repeatable is this device, at the scale a space's LUT needs? A short probe, before trusting a LUT built here.

Why: on a quiet 2-core EPYC VM the same networks measured twice agreed within ±10 % only 43 % of the time (issue 49);
nothing else ran. A user cannot fix such a device, so hwnas says what it can promise there. The probe times one small
block and one mid-size network of the space over and over for ``seconds``, alternating, in one fresh measuring
process with the LUT build's settings and timing loop (each *window* is one ``profiler.measure``: warm-up, then
samples until the median is stable). From the windows' medians:

* successive agreement: how often two consecutive windows of one item agree within ±10 % (the bench's
  repeatability row, at its smallest time scale);
* pair agreement of the network: how often two windows taken at any two times agree within ±10 %: the fidelity a
  LUT can be judged to here ("two measurements of one network agree within ±10 % about P % of the time");
* slow spells: windows whose median is more than :data:`SLOW_PCT` above their item's lower quartile (a robust
  calm figure: interference only adds time); their share of the time, typical length and depth.

Meanwhile this process samples the host (:mod:`hwnas.measuring.host_load`), so the verdict says whether the noise
came from a busy neighbour or from the device itself.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.core.errors import InputError
from hwnas.measuring.host_load import BUSY_NEIGHBOUR, HostLoad, HostSampler, classify

AGREE_PCT = 10.0        # "agree": the larger of two medians at most this much above the smaller
SLOW_PCT = 20.0         # a window this much above its item's lower quartile is in a slow spell
FIT_PCT = 90.0          # the network's pair agreement from which a LUT can be judged at ±10 % here
MIN_WINDOWS = 3         # of each item, however short the probe
DEFAULT_SECONDS = 15.0


class ProbeError(InputError):
    """A probe that cannot run as asked (its duration)."""


@dataclass(frozen=True)
class Window:
    """One timing of one item: when (seconds from the probe's start), its median and robust CV."""

    item: str
    start_s: float
    end_s: float
    median_ms: float
    robust_cv: float


@dataclass(frozen=True)
class ItemNoise:
    """One item's windows summarised."""

    item: str
    key: str
    windows: int
    median_ms: float
    lower_quartile_ms: float
    successive_agree_pct: float
    pairs_agree_pct: float
    median_robust_cv: float


@dataclass(frozen=True)
class SlowSpells:
    """Runs of consecutive slow windows (both items on one timeline): share of the probe's time, count, median
    length (s) and median depth (slowest window / its item's lower quartile)."""

    share_pct: float
    count: int
    typical_s: float
    typical_depth: float


def agree(a: float, b: float, pct: float = AGREE_PCT) -> bool:
    """Two medians agree when the larger is at most ``pct`` % above the smaller."""
    lo, hi = min(a, b), max(a, b)
    return hi <= lo * (1 + pct / 100)


def successive_agreement(values: Sequence[float], pct: float = AGREE_PCT) -> float:
    """% of consecutive pairs that agree (100 with fewer than two values)."""
    pairs = list(zip(values, values[1:]))
    return 100.0 * sum(agree(a, b, pct) for a, b in pairs) / len(pairs) if pairs else 100.0


def pair_agreement(values: Sequence[float], pct: float = AGREE_PCT) -> float:
    """% of all pairs (any two times) that agree (100 with fewer than two values)."""
    pairs = list(itertools.combinations(values, 2))
    return 100.0 * sum(agree(a, b, pct) for a, b in pairs) / len(pairs) if pairs else 100.0


def item_noise(item: str, key: str, windows: Sequence[Window]) -> ItemNoise:
    meds = [w.median_ms for w in windows]
    return ItemNoise(item, key, len(meds), round(float(np.median(meds)), 6), round(float(np.percentile(meds, 25)), 6),
                     round(successive_agreement(meds), 1), round(pair_agreement(meds), 1),
                     round(float(np.median([w.robust_cv for w in windows])), 5))


def slow_spells(windows: Sequence[Window], slow_pct: float = SLOW_PCT) -> SlowSpells:
    """Spells of windows slower than their item's lower quartile by more than ``slow_pct`` %, on one timeline."""
    if not windows:
        return SlowSpells(0.0, 0, 0.0, 1.0)
    base = {it: float(np.percentile([w.median_ms for w in windows if w.item == it], 25))
            for it in {w.item for w in windows}}
    ordered = sorted(windows, key=lambda w: w.start_s)
    spells: list[list[Window]] = []
    run: list[Window] = []
    for w in ordered:
        if w.median_ms > base[w.item] * (1 + slow_pct / 100):
            run.append(w)
        elif run:
            spells.append(run)
            run = []
    if run:
        spells.append(run)
    span = max(ordered[-1].end_s - ordered[0].start_s, 1e-9)
    slow_time = sum(w.end_s - w.start_s for s in spells for w in s)
    lengths = [s[-1].end_s - s[0].start_s for s in spells]
    depths = [max(w.median_ms / base[w.item] for w in s) for s in spells]
    return SlowSpells(round(100 * slow_time / span, 1), len(spells),
                      round(float(np.median(lengths)), 2) if spells else 0.0,
                      round(float(np.median(depths)), 2) if spells else 1.0)


def too_noisy(*items: ItemNoise) -> bool:
    """Whether any item's windows agree (any two times) less often than :data:`FIT_PCT`."""
    return any(it.pairs_agree_pct < FIT_PCT for it in items)


@dataclass(frozen=True)
class NoiseProbe:
    """What the probe found: both items' repeatability, the slow spells, the host, and the cause."""

    profiler: str
    space: str
    seconds: float
    pinning: str
    threads: int
    block: ItemNoise
    network: ItemNoise
    spells: SlowSpells
    host: HostLoad | None
    cause: str
    windows: tuple[Window, ...] = ()

    @property
    def fidelity_pct(self) -> float:
        """How often two measurements of one network agree within ±10 %: no LUT is judged finer here."""
        return self.network.pairs_agree_pct

    @property
    def noisy(self) -> bool:
        return too_noisy(self.block, self.network)

    def verdict(self) -> str:
        bound = (f"two measurements of one network agree within ±{AGREE_PCT:.0f} % about {self.fidelity_pct:.0f} % "
                 f"of the time")
        if not self.noisy:
            beside = " even beside the neighbour" if self.cause == BUSY_NEIGHBOUR else ""
            return f"verdict: {self.cause}: {bound}; a LUT can be judged at ±{AGREE_PCT:.0f} % here{beside}"
        why = (f"a busy neighbour ({self.host.describe()}): stop it or pin away from it (--pin-cpu), then probe "
               f"again" if self.cause == BUSY_NEIGHBOUR and self.host is not None else
               "the device's own noise (nothing else took the CPU): build with --paired or more --processes, or "
               "accept the bound" if self.cause != "not observed" else "cause not observed here")
        return f"verdict: {self.cause}: {bound}: a LUT cannot be judged finer than that here; {why}"

    def lines(self) -> list[str]:
        """The table and the verdict ``hwnas probe`` prints."""
        head = f"{'item':8s} {'windows':>7s} {'median':>10s} {'low quart.':>10s} {'succ. ±10%':>10s} " \
               f"{'any ±10%':>9s} {'robust CV':>9s}"
        out = [f"noise probe: {self.profiler} on space {self.space}, {self.threads} thread(s), {self.pinning}, "
               f"{self.seconds:.0f} s", head, "-" * len(head)]
        for it in (self.block, self.network):
            out.append(f"{it.item:8s} {it.windows:7d} {it.median_ms:8.4f}ms {it.lower_quartile_ms:8.4f}ms "
                       f"{it.successive_agree_pct:9.0f}% {it.pairs_agree_pct:8.0f}% {it.median_robust_cv * 100:8.2f}%")
        s = self.spells
        out.append(f"slow spells (a window > {SLOW_PCT:.0f} % above its item's lower quartile): {s.share_pct:.0f} % "
                   f"of the time, {s.count} spell(s), typically {s.typical_s:.1f} s at {s.typical_depth:.2f}x")
        out.append(f"host: {self.host.describe()}" if self.host is not None else
                   "host: not observed (no /proc here, or measured on a device agent)")
        out.append(self.verdict())
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["host"] = self.host.to_dict() if self.host is not None else None
        d["fidelity_pct"] = self.fidelity_pct
        d["noisy"] = self.noisy
        d["verdict"] = self.verdict()
        return d

    def summary(self) -> dict[str, Any]:
        """The probe without its windows: what a LUT records."""
        d = self.to_dict()
        d.pop("windows")
        return d


def probe_items(space: Any) -> tuple[Any, Any]:
    """(a small block, a mid-size network) of ``space``: the block at the lower quartile of MACs among its
    distinct blocks (LUT entries are mostly small), the network pairing's seeded, non-extreme sample."""
    from hwnas.measuring.pairing import reference_arch

    blocks = sorted(space.all_layers(space.resolutions), key=lambda d: (d.macs, d.key))
    return blocks[len(blocks) // 4], reference_arch(space)


def _timer(profiler: Any, module: Any, shape: tuple[int, ...], tmp: Path, name: str) -> Any:
    """A no-argument callable timing ``module`` one window: as a model file exported once where the profiler
    times files (each window then costs a session, not an export), else the module itself."""
    from hwnas.profilers._common import capability

    if capability(profiler, "measures_onnx_files") and hasattr(profiler, "model_file"):
        data, fmt = profiler.model_file(module, shape)
        path = tmp / f"{name}.{fmt}"
        path.write_bytes(data)
        return lambda: profiler.measure_onnx(path)
    return lambda: profiler.measure(module, shape)


def _probe_worker(profiler_name: str, options: dict[str, Any], block_key: str, arch: dict[str, Any],
                  space_dict: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """Runs in a fresh process, pinned as the LUT build's workers: alternate block and network windows."""
    import warnings

    from hwnas.profilers import create_profiler
    from hwnas.spaces.base import space_from_dict
    from hwnas.spaces.blocks import LayerDesc, build_model

    warnings.filterwarnings("ignore")
    profiler = create_profiler(profiler_name, **options)
    if hasattr(profiler, "prepare"):
        profiler.prepare()
    space = space_from_dict(space_dict)
    a = space.arch_from_dict(arch)
    d = LayerDesc.from_key(block_key)
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hwnas-probe-") as tmp:
        items = [("block", _timer(profiler, d.build(), d.input_shape, Path(tmp), "block")),
                 ("network", _timer(profiler, build_model(a), (1, space.in_channels, a.resolution, a.resolution),
                                    Path(tmp), "network"))]
        t0 = time.perf_counter()
        rounds = 0
        while rounds < MIN_WINDOWS or time.perf_counter() - t0 < seconds:
            for name, timer in items:
                start = time.perf_counter() - t0
                m = timer()
                out.append({"item": name, "start_s": round(start, 4), "end_s": round(time.perf_counter() - t0, 4),
                            "median_ms": m.median_ms, "robust_cv": m.robust_cv})
            rounds += 1
    return out


def probe(profiler_name: str, space: Any, options: dict[str, Any], seconds: float = DEFAULT_SECONDS) -> NoiseProbe:
    """Time a small block and a mid-size network of ``space`` alternately for about ``seconds`` in one fresh
    measuring process (``options``: the profiler's, pinning and threads as ``hwnas profile`` takes them) while
    sampling the host; see the module's docstring for what is derived."""
    import math

    from hwnas.measuring.isolate import die_with_parent
    from hwnas.measuring.measure import available_profiler

    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ProbeError(f"the probe needs a duration > 0 seconds, got {seconds!r}")
    profiler = available_profiler(profiler_name, options)  # unknown or unavailable: said before any work
    settings = profiler.settings() if hasattr(profiler, "settings") else {}
    block, arch = probe_items(space)
    ctx = mp.get_context("spawn")
    sampler = HostSampler() if not options.get("device") else None  # a device agent's host is not this one
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        if sampler is not None:
            sampler.__enter__()
        try:
            rows = pool.submit(_probe_worker, profiler_name, options, block.key, arch.to_dict(), space.to_dict(),
                               float(seconds)).result()
        finally:
            if sampler is not None:
                sampler.__exit__(None, None, None)
    windows = tuple(Window(**r) for r in rows)
    b = item_noise("block", block.key, [w for w in windows if w.item == "block"])
    n = item_noise("network", arch.id, [w for w in windows if w.item == "network"])
    host = sampler.result() if sampler is not None else None
    return NoiseProbe(profiler_name, space.name, round(windows[-1].end_s, 2), str(settings.get("pinning", "?")),
                      int(settings.get("threads", options.get("threads", 1))), b, n, slow_spells(windows), host,
                      classify(host, too_noisy(b, n)), windows)
