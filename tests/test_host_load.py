"""Who else used the CPU while measuring (hwnas.measuring.host_load) and what a LUT build records about it
(hwnas.measuring.build_noise, hwnas.latency.quality).

The busy-neighbour case is a real neighbour: a CPU-spinning process that is not this one's descendant (hwnas
counts its own workers as its own), pinned to the measuring CPU. The quiet and own-noise cases cannot be made on a
shared machine, so the classifier is checked on snapshots built from a real read of /proc."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hwnas.measuring.host_load import (BUSY_NEIGHBOUR, NOT_OBSERVED, OWN_NOISE, QUIET, Competitor, HostLoad,
                                       HostSampler, classify, own_keys, read_sample, summarize)

linux_only = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs a Linux /proc")
SPIN = "# hwnas-test-neighbour\nimport os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nend = time.time() + float(sys.argv[2])\n" \
       "while time.time() < end:\n    pass\n"


def spinner(cpu: int, seconds: float) -> int:
    """A CPU-spinning process pinned to ``cpu`` for at most ``seconds``, orphaned (its parent shell exits at once),
    so it is a neighbour and not a descendant of this process. Returns its pid."""
    out = subprocess.run(["sh", "-c", f'"$0" -c "$1" {cpu} {seconds} >/dev/null 2>&1 & echo $!',
                          sys.executable, SPIN], capture_output=True, text=True, check=True, timeout=30)
    return int(out.stdout.strip())


@linux_only
def test_a_real_spinning_neighbour_is_a_busy_neighbour_named_by_pid_and_command():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    pid = spinner(cpu, 20)
    try:
        time.sleep(0.3)  # started and spinning
        with HostSampler(interval=0.2, top=50) as s:
            time.sleep(2.0)
        load = s.result()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert load is not None and load.samples >= 5
    mine = [c for c in load.top if c.pid == pid]
    assert mine and "hwnas-test-neighbour" in mine[0].command and mine[0].cores > 0.1
    assert load.others_cores >= mine[0].cores * 0.5 and classify(load, noisy=False) == BUSY_NEIGHBOUR
    assert f"pid {pid} " in load.describe()


@linux_only
def test_own_workers_are_not_neighbours():
    """This process's children (the measuring workers) are its own, however busy."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        with HostSampler(interval=0.2, top=50) as s:
            time.sleep(1.5)
    finally:
        child.kill()
        child.wait()
    load = s.result()
    assert child.pid not in [c.pid for c in load.top] and load.own_cores > 0.3


@linux_only
def test_classifier_on_snapshots_built_from_a_real_read():
    first = read_sample()
    assert first is not None and first.cpus >= 1
    me = os.getpid()
    own = own_keys(first, me)
    assert any(k[0] == me for k in own)
    hz, total = 100, 1000 * first.cpus  # 10 s later at 100 ticks a second on every CPU

    def later(busy: int = 0, steal: int = 0):
        c = list(first.cpu)
        c[0] += busy
        c[7] += steal
        c[3] += total - busy - steal  # the rest idle
        return replace(first, t=first.t + 10.0, cpu=tuple(c))

    quiet = summarize(first, later(busy=10), {}, own, {}, 0.1, 2, tick_hz=hz)  # 1 % of one core, nobody named
    assert quiet.others_cores == pytest.approx(0.01) and quiet.top == ()
    assert classify(quiet, noisy=False) == QUIET and classify(quiet, noisy=True) == OWN_NOISE
    other = next((k for k in first.procs if k not in own), (999_999, 1))  # a real process that is not ours
    busy = summarize(first, later(busy=600), {other: 600}, own, {other: "python train.py"}, 2.0, 2, tick_hz=hz)
    assert busy.others_cores == pytest.approx(0.6) and busy.top[0].pid == other[0]
    assert classify(busy, noisy=False) == BUSY_NEIGHBOUR and "python train.py (0.60 core)" in busy.describe()
    mine = next(iter(own))  # the same time used by our own worker is not a neighbour's
    ours = summarize(first, later(busy=600), {mine: 600}, own, {}, 1.0, 2, tick_hz=hz)
    assert ours.top == () and ours.others_cores == pytest.approx(0.0) and classify(ours, noisy=True) == OWN_NOISE
    stolen = summarize(first, later(steal=total // 5), {}, own, {}, 0.5, 2, tick_hz=hz)  # the VM host took 20 %
    assert stolen.steal_pct == pytest.approx(20.0) and classify(stolen, noisy=False) == BUSY_NEIGHBOUR
    assert classify(None, noisy=True) == NOT_OBSERVED and classify(None, noisy=False) == QUIET
    assert HostLoad.from_dict(busy.to_dict()) == busy


def test_a_proc_stat_with_spaces_and_parentheses_in_the_name_is_read(tmp_path):
    (tmp_path / "stat").write_text("cpu  10 0 5 100 0 0 0 3 0 0\ncpu0 10 0 5 100 0 0 0 3 0 0\n")
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 1/100 42\n")
    fields = ["S", "1"] + ["0"] * 9 + ["70", "30"] + ["0"] * 6 + ["12345"] + ["0"] * 10
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(f"42 (my (odd) name) {' '.join(fields)}\n")
    (tmp_path / "42" / "cmdline").write_bytes(b"python\0spin.py\0")
    s = read_sample(tmp_path)
    assert s.cpus == 1 and s.loadavg == 0.5 and s.cpu[7] == 3
    assert s.procs == {(42, 12345): (1, "my (odd) name", 100)}
    assert read_sample(tmp_path / "missing") is None


def _lut(tmp_path: Path, cvs: list[float], loo: float | None, network_cvs: tuple[float, ...] = (0.5, 0.02)):
    from hwnas.latency.lut import LUT

    entries = {f"k{i}": {"median_ms": 1.0, "robust_cv": cv} for i, cv in enumerate(cvs)}
    rows = [{"arch_id": f"a{i}", "measured": {"median_ms": 1.0, "robust_cv": cv}} for i, cv in enumerate(network_cvs)]
    calib = ({"complete": True, "model": "scale", "loo_mape_pct": {"scale": loo}, "data": rows} if loo is not None
             else None)
    return LUT(profiler="ort-cpu", settings={}, fingerprint={}, space={}, entries=entries, calibration=calib,
               command="hwnas profile --profiler ort-cpu --space nb201 --out l.json --force", path=tmp_path / "l.json")


def test_a_noisy_build_is_recorded_with_its_cause_and_the_command_that_finishes_it(tmp_path):
    from hwnas.latency.quality import noise_note, quality_warning
    from hwnas.measuring.build_noise import build_warning, record_noise

    busy = HostLoad(60.0, 2, 1.9, 0.95, 0.95, 0.0, 3.2, (Competitor(4242, "python train.py", 0.9),), 100)
    lut = _lut(tmp_path, [0.01, 0.3, 0.5, 0.02], loo=43.0)
    rec = record_noise(lut, list(lut.entries), busy, calibrated_now=True)
    assert rec["quality"] == "noisy" and rec["cause"] == BUSY_NEIGHBOUR and rec["noisy_blocks_pct"] == 50.0
    assert rec["finish"] == "hwnas profile --profiler ort-cpu --space nb201 --out l.json --force"
    said = quality_warning(lut)
    assert "43.0 %" in said and "pid 4242 python train.py" in said and "--pin-cpu" in said
    assert said.splitlines()[-1].strip() == rec["finish"] and build_warning(rec, None, lut.path) == said

    quiet_host = HostLoad(60.0, 2, 1.0, 0.98, 0.02, 0.1, 1.0, (), 100)
    calm_blocks = _lut(tmp_path, [0.01, 0.02], loo=25.0)  # only the calibration was poor: --recalibrate
    rec = record_noise(calm_blocks, list(calm_blocks.entries), quiet_host, calibrated_now=True)
    assert rec["cause"] == OWN_NOISE and "--paired --force" in rec["finish"]
    assert "own noise" in quality_warning(calm_blocks) and "hwnas probe" in quality_warning(calm_blocks)
    paired = _lut(tmp_path, [0.01], loo=25.0)
    paired.settings["pairing"] = {"calm_ms": 1.0}
    assert record_noise(paired, ["k0"], quiet_host, calibrated_now=True)["finish"].endswith("--recalibrate")

    # calm blocks and calm networks, yet a poor fit: not noise (measuring again would change nothing)
    misfit = _lut(tmp_path, [0.01, 0.02], loo=23.0, network_cvs=(0.02, 0.03, 0.01))
    rec = record_noise(misfit, list(misfit.entries), quiet_host, calibrated_now=True)
    assert rec["quality"] == "poor fit" and rec["cause"] == "not noise" and "bench_fidelity.py" in rec["finish"]
    assert "not noise" in quality_warning(misfit) and "--paired" not in quality_warning(misfit)

    fine = _lut(tmp_path, [0.01, 0.02], loo=2.0)
    rec = record_noise(fine, list(fine.entries), quiet_host, calibrated_now=True)
    assert rec["quality"] == "ok" and rec["finish"] is None and quality_warning(fine) is None
    assert "quality ok" in noise_note(rec) and quality_warning(_lut(tmp_path, [], None)) is None  # no record: old LUT


@linux_only
def test_a_build_beside_a_real_neighbour_records_it(small_space, quick_policy, tmp_path):
    """A LUT built with a spinning process on its measuring CPU records the host it saw: busy neighbour, named."""
    from hwnas.latency.lut import LUT
    from hwnas.measuring.profiling import build_lut
    from hwnas.profilers._host import auto_pin

    cpu = auto_pin(1) if auto_pin(1) is not None else sorted(os.sched_getaffinity(0))[-1]
    pid = spinner(cpu, 120)
    try:
        r = build_lut("torch-cpu", small_space, tmp_path / "l.json", resolutions=[24], calibrate=False,
                      profiler_options={"policy": quick_policy}, progress=False, processes=0,
                      command="hwnas profile --profiler torch-cpu --out l.json")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rec = LUT.load(tmp_path / "l.json").settings["noise"]
    assert rec == r.noise and rec["cause"] == BUSY_NEIGHBOUR and rec["host"]["others_cores"] >= 0.25
    assert rec["blocks_measured"] == len({d.key for d in small_space.all_layers([24])})
    assert rec["quality"] in ("ok", "noisy") and (rec["finish"] is None) == (rec["quality"] == "ok")
    if rec["quality"] == "noisy":  # the machine decides; either way the result says which
        assert r.lines()[-1].startswith("LUT written but NOT trustworthy") and "--pin-cpu" in r.warning()
    else:
        assert r.warning() is None
