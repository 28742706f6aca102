"""A process that orchestrates (CLI, demo, search, finalize, tests) never pins or limits its own threads.

Only measuring happens pinned (in worker processes, or inside ``profiler.applied()``, which restores).
Seen on a newcomer's machine: building a LUT left ``hwnas demo`` pinned to one CPU, and supernet
training then ran at 18-19 s per step instead of 0.35. Every path that measures is checked here for
leaving this process's CPU affinity and torch thread count as they were.
"""
import json
import os

import pytest
import torch

from hwnas.measuring.calibrate import calibrate_lut
from hwnas.latency.lut import LUT
from hwnas.measuring.profiling import build_lut
from hwnas.profilers import create_profiler
from hwnas.profilers._host import auto_pin

needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                    reason="pinning cannot be told apart from the default on a 1-CPU process")


@pytest.fixture
def unchanged():
    """Asserts the test left affinity and torch threads as they were (and that they could have changed)."""
    before = (os.sched_getaffinity(0), torch.get_num_threads())
    assert auto_pin(1) is not None  # the profilers below really are asked to pin
    yield
    assert (os.sched_getaffinity(0), torch.get_num_threads()) == before


def _options(quick_policy):
    return {"threads": 1, "pin_cpu": auto_pin(1), "policy": quick_policy}


@needs_two_cpus
def test_profiler_measures_pinned_then_restores(unchanged, quick_policy):
    prof = create_profiler("torch-cpu", **_options(quick_policy))
    assert prof.fingerprint()["pinning"] == f"pinned to cpu {auto_pin(1)}"  # described without applying
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["affinity"], seen["threads"] = os.sched_getaffinity(0), torch.get_num_threads()
            return x

    prof.measure(Probe(), (1, 3, 8, 8))
    assert seen == {"affinity": {auto_pin(1)}, "threads": 1}  # measuring itself is pinned


@needs_two_cpus
@pytest.mark.parametrize("profiler", ["torch-cpu", "ort-cpu"])
def test_build_lut_in_process_fresh_resumed_complete(unchanged, tmp_path, small_space, quick_policy, profiler):
    out = tmp_path / "lut.json"
    kw = dict(resolutions=[24], profiler_options=_options(quick_policy), calibrate=False, progress=False, processes=0)
    build_lut(profiler, small_space, out, **kw)
    data = json.loads(out.read_text())
    keys = sorted(data["entries"])
    for k in keys[: len(keys) // 2]:  # as if killed half-way
        del data["entries"][k]
    out.write_text(json.dumps(data))
    report = build_lut(profiler, small_space, out, **kw)  # resumed
    assert report.measured == len(keys) // 2
    assert build_lut(profiler, small_space, out, **kw).measured == 0  # complete: nothing to do


@needs_two_cpus
def test_build_lut_isolated_with_calibration_and_reference(demo_lut_build, calibrated_lut_path):
    """The shared fixture builds as the demo does (in this process: pinned workers, calibration, drift
    reference); it recorded this process's affinity and threads before and after."""
    assert demo_lut_build["before"] == demo_lut_build["after"]
    lut = LUT.load(calibrated_lut_path)
    assert lut.calibration["complete"] and lut.reference and len(lut.reference["best_ms"]) == 3
    assert lut.fingerprint["pinning"] == f"pinned to cpu {auto_pin(1)}"  # the workers were pinned, this process not


@needs_two_cpus
def test_calibrate_in_process(unchanged, demo_lut_path, quick_policy):
    lut = LUT.load(demo_lut_path)
    calib = calibrate_lut(lut, "torch-cpu", _options(quick_policy), n_archs=4, resolutions=[24], progress=False,
                          save=False, processes=0)
    assert calib["complete"] and len(calib["data"]) == 4


@needs_two_cpus
def test_cli_measure_in_process(unchanged, demo_lut_path, tmp_path, capsys):
    from hwnas.app.cli import main

    rc = main(["measure", "--lut", str(demo_lut_path), "--sample", "2", "--resolution", "24", "--processes", "0",
               "--quick", "--pin-cpu", "auto"])
    assert rc == 0 and capsys.readouterr().out.count("measured median") == 2


@needs_two_cpus
def test_finalize_measuring_in_process(unchanged, tiny_run, tmp_path):
    from hwnas.finalize import finalize

    report = finalize(tiny_run, tmp_path / "bundle", processes=0, profiler="torch-cpu", command="pytest",
                      log=lambda s: None)
    assert report.report["latency"]["measured"]["median_ms"] > 0
