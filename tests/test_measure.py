"""Measuring "as the LUT was built": one rule for every caller (measure, fidelity, finalize, drift, the CLI)."""
import argparse

import pytest

from hwnas.app.args import profiler_options_of
from hwnas.latency.lut import LUT
from hwnas.measuring.measure import lut_profiler_options, profiler_for, profiler_options
from hwnas.profilers import ProfilerUnavailable
from hwnas.profilers._host import auto_pin


def _lut(threads: int, pinning: str, profiler: str = "torch-cpu") -> LUT:
    return LUT(profiler=profiler, settings={"threads": threads, "pinning": pinning}, fingerprint={}, space={})


def test_default_options_pin_one_thread_by_the_auto_rule():
    assert profiler_options() == {"threads": 1, "pin_cpu": auto_pin(1)}
    assert profiler_options(4) == {"threads": 4, "pin_cpu": auto_pin(4)}
    assert profiler_options(1, None, policy="p") == {"threads": 1, "pin_cpu": None, "policy": "p"}


def test_lut_options_follow_the_lut_and_its_pinning():
    assert lut_profiler_options(_lut(1, "pinned to cpu 3")) == {"threads": 1, "pin_cpu": auto_pin(1)}
    assert lut_profiler_options(_lut(1, "not pinned")) == {"threads": 1, "pin_cpu": None}
    assert lut_profiler_options(_lut(2, "not pinned")) == {"threads": 2, "pin_cpu": None}
    # threads given: pinning by the rule for those threads, never one CPU for many threads
    assert lut_profiler_options(_lut(1, "pinned to cpu 3"), threads=4) == {"threads": 4, "pin_cpu": auto_pin(4)}
    assert lut_profiler_options(_lut(1, "pinned to cpu 3"), pin_cpu=None, policy=None) == {
        "threads": 1, "pin_cpu": None, "policy": None}


def _args(threads: int = 1, pin: str = "auto") -> argparse.Namespace:
    return argparse.Namespace(threads=threads, pin_cpu=pin, quick=False)


def test_cli_flags_at_their_defaults_mean_as_the_lut_was_built():
    lut = _lut(2, "not pinned")
    assert profiler_options_of(_args(), lut) == lut_profiler_options(lut)
    assert profiler_options_of(_args(3, "none"), lut) == {"threads": 3, "pin_cpu": None}
    assert profiler_options_of(_args()) == profiler_options()  # no LUT: the defaults of a new LUT


def test_profiler_for_a_named_profiler_takes_the_lut_settings():
    lut = _lut(2, "not pinned", profiler="ort-cpu")
    p = profiler_for(lut, "torch-cpu")
    assert p.name == "torch-cpu" and p.threads == 2 and p.pin_cpu is None
    assert profiler_for(lut).name == "ort-cpu"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="torch-cuda is available here")
def test_an_unavailable_profiler_says_so():
    with pytest.raises(ProfilerUnavailable, match="the LUT's profiler 'torch-cuda' is unavailable here"):
        profiler_for(_lut(1, "not pinned", profiler="torch-cuda"))
