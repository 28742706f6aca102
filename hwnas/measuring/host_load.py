"""Who else used the CPU while hwnas measured: a busy neighbour, the device's own noise, or a quiet host.

Why: a noisy LUT has two causes a user fixes differently. Another process on the host (a training job, a second
``hwnas profile``) is stopped, or the measuring pinned away from it; the device's own noise (frequency scaling, a
noisy VM host, a phone that throttles) cannot be stopped, only worked around (``--paired``) or accepted. The build
used to say "likely measured while the device was busy" even when nothing else ran (issue 49).

What is read (Linux ``/proc``; elsewhere nothing is observed and the cause is said to be unknown): the CPU time of
all CPUs (``/proc/stat``, steal time included: on a VM, what the hypervisor gave other guests), the 1-minute load
average, and every process's CPU time (``/proc/[pid]/stat``), sampled by a light thread every ``interval`` seconds.
This process and its descendants (the measuring workers) are "own"; every other process is a competitor.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BUSY_NEIGHBOUR, OWN_NOISE, QUIET, NOT_OBSERVED = "busy neighbour", "own noise", "quiet", "not observed"
OTHERS_BUSY_CORES = 0.25   # other processes used a quarter of one core on average: enough to stretch a block
STEAL_BUSY_PCT = 5.0       # the VM host took this share of all CPU time for other guests
TOP = 3                    # competitors named
INTERVAL_S = 0.5           # between samples: short enough to see a 1 s neighbour, ~5 ms of reading each

ProcKey = tuple[int, int]  # (pid, start time in ticks): a reused pid is another process


@dataclass(frozen=True)
class ProcSample:
    """One read of ``/proc``: aggregate CPU ticks (user nice system idle iowait irq softirq steal), the CPU count,
    the 1-minute load average, and per process (pid, start) -> (parent pid, name, CPU ticks)."""

    t: float
    cpu: tuple[int, ...]
    cpus: int
    loadavg: float
    procs: dict[ProcKey, tuple[int, str, int]]


def read_sample(root: str | Path = "/proc") -> ProcSample | None:
    """Read ``root`` now; None where it is not a Linux ``/proc`` (macOS, Windows)."""
    root = Path(root)
    try:
        stat = (root / "stat").read_text().splitlines()
        load = float((root / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    cpu = tuple(int(v) for v in stat[0].split()[1:9])
    cpus = sum(1 for line in stat if line.startswith("cpu") and line[3:4].isdigit())
    procs: dict[ProcKey, tuple[int, str, int]] = {}
    for d in os.scandir(root):
        if not d.name.isdigit():
            continue
        try:
            text = Path(d.path, "stat").read_text()
        except OSError:  # ended between the listing and the read
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        f = text[text.rfind(")") + 2:].split()  # fields from 3 (state) on: f[0] is field 3
        procs[(int(d.name), int(f[19]))] = (int(f[1]), name, int(f[11]) + int(f[12]))
    return ProcSample(time.monotonic(), cpu, max(1, cpus), load, procs)


def own_keys(sample: ProcSample, me: int) -> set[ProcKey]:
    """This process and all its descendants in ``sample``."""
    children: dict[int, list[ProcKey]] = {}
    for key, (ppid, _name, _ticks) in sample.procs.items():
        children.setdefault(ppid, []).append(key)
    out = {k for k in sample.procs if k[0] == me}
    todo = [me]
    while todo:
        for key in children.get(todo.pop(), []):
            if key not in out:
                out.add(key)
                todo.append(key[0])
    return out


@dataclass(frozen=True)
class Competitor:
    """A process that used CPU while hwnas measured: ``cores`` is its average share of one core."""

    pid: int
    command: str
    cores: float

    def describe(self) -> str:
        return f"pid {self.pid} {self.command} ({self.cores:.2f} core)"


@dataclass(frozen=True)
class HostLoad:
    """The host over one measuring window. ``busy_cores``: all CPU time used / wall time; ``own_cores``: of it,
    this process and its workers; ``others_cores`` = the rest (other processes and the kernel); ``steal_pct``: of
    all CPU time, taken by the VM host for other guests."""

    seconds: float
    cpus: int
    busy_cores: float
    own_cores: float
    others_cores: float
    steal_pct: float
    loadavg_max: float
    top: tuple[Competitor, ...] = ()
    samples: int = 0

    @property
    def neighbour(self) -> bool:
        return self.others_cores >= OTHERS_BUSY_CORES or self.steal_pct >= STEAL_BUSY_PCT

    def describe(self) -> str:
        who = "; ".join(c.describe() for c in self.top) or "none seen by name"
        return (f"other processes used {self.others_cores:.2f} of {self.cpus} cores (top: {who}); steal "
                f"{self.steal_pct:.1f} %; load average up to {self.loadavg_max:.2f}; over {self.seconds:.0f} s")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top"] = [asdict(c) for c in self.top]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HostLoad":
        return cls(**{**d, "top": tuple(Competitor(**c) for c in d.get("top", []))})


def summarize(first: ProcSample, last: ProcSample, per_proc: dict[ProcKey, int], own: set[ProcKey],
              names: dict[ProcKey, str], loadavg_max: float, samples: int, tick_hz: float | None = None,
              top: int = TOP) -> HostLoad:
    """A :class:`HostLoad` from the first and last samples (aggregates) and the CPU ticks each process used
    between them (``per_proc``); the ``top`` busiest other processes named."""
    hz = tick_hz or os.sysconf("SC_CLK_TCK")
    wall = max(last.t - first.t, 1e-9)
    d = [b - a for a, b in zip(first.cpu, last.cpu)]
    total = max(sum(d), 1)
    idle, iowait, steal = d[3], d[4], d[7]
    busy_ticks = total - idle - iowait - steal
    scale = last.cpus / total  # ticks of /proc/stat -> cores (robust to a clock that is not exactly `hz`)
    busy = busy_ticks * scale
    own_cores = sum(t for k, t in per_proc.items() if k in own) / hz / wall
    others = max(0.0, busy - own_cores)
    busiest = sorted(((t, k) for k, t in per_proc.items() if k not in own and t > 0), reverse=True)[:top]
    comps = tuple(Competitor(k[0], names.get(k, "?"), round(t / hz / wall, 3)) for t, k in busiest)
    return HostLoad(round(wall, 3), last.cpus, round(busy, 3), round(own_cores, 3), round(others, 3),
                    round(steal / total * 100, 2), round(loadavg_max, 2), comps, samples)


def command_of(pid: int, name: str, root: str | Path = "/proc") -> str:
    """The process's command line (80 characters at most), or its name when that cannot be read."""
    try:
        raw = Path(root, str(pid), "cmdline").read_bytes()
    except OSError:
        return name
    text = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    return (text[:77] + "...") if len(text) > 80 else (text or f"[{name}]")


@dataclass
class HostSampler:
    """``with HostSampler() as s: ...measure...``; then ``s.result()``: the host over the block (None where there
    is no ``/proc``). A daemon thread samples every ``interval`` seconds; it sleeps between reads, so it costs the
    measuring little, and it is never pinned with it (threads started before pinning keep their own CPUs)."""

    interval: float = INTERVAL_S
    root: str = "/proc"
    top: int = TOP
    _first: ProcSample | None = field(default=None, init=False)
    _last: ProcSample | None = field(default=None, init=False)
    _per_proc: dict[ProcKey, int] = field(default_factory=dict, init=False)
    _own: set[ProcKey] = field(default_factory=set, init=False)
    _names: dict[ProcKey, str] = field(default_factory=dict, init=False)
    _load: float = field(default=0.0, init=False)
    _n: int = field(default=0, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def _take(self) -> None:
        s = read_sample(self.root)
        if s is None:
            return
        self._own |= own_keys(s, os.getpid())
        prev = self._last
        if prev is not None:
            for key, (_ppid, name, ticks) in s.procs.items():
                used = ticks - prev.procs[key][2] if key in prev.procs else ticks  # born since: all its time
                if used > 0:
                    self._per_proc[key] = self._per_proc.get(key, 0) + used
                    if key not in self._names and key not in self._own:
                        self._names[key] = command_of(key[0], name, self.root)
        self._first = self._first or s
        self._last = s
        self._load = max(self._load, s.loadavg)
        self._n += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> "HostSampler":
        self._take()
        self._thread = threading.Thread(target=self._run, name="hwnas-host-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()

    def result(self) -> HostLoad | None:
        if self._first is None or self._last is None or self._last is self._first:
            return None
        return summarize(self._first, self._last, self._per_proc, self._own, self._names, self._load, self._n,
                         top=self.top)


def classify(load: HostLoad | None, noisy: bool) -> str:
    """``busy neighbour`` when another process (or the VM host, by steal time) took CPU while measuring, whether
    or not the timings showed it; else ``own noise`` when the timings were noisy anyway (nothing else ran: the
    device itself); else ``quiet``. ``not observed`` when the host could not be read (no ``/proc``, or measured on
    a device agent, whose host is not this one) and the timings were noisy."""
    if load is None:
        return NOT_OBSERVED if noisy else QUIET
    if load.neighbour:
        return BUSY_NEIGHBOUR
    return OWN_NOISE if noisy else QUIET
