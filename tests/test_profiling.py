import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hwnas.latency.lut import LUT, LUTError
from hwnas.measuring.profiling import build_lut

from conftest import ROOT, saved


def test_build_has_every_key_of_the_space(demo_lut, demo):
    keys = {d.key for d in demo.all_layers([24])}
    assert set(demo_lut.entries) == keys
    assert all(e["median_ms"] > 0 and e["n"] >= 5 for e in demo_lut.entries.values())


def test_rebuild_resumes_and_measures_nothing_new(demo_lut_path, demo, quick_policy, tmp_path):
    out = tmp_path / "lut.json"
    out.write_text(demo_lut_path.read_text())
    data = json.loads(out.read_text())
    dropped = sorted(data["entries"])[:3]
    for k in dropped:
        del data["entries"][k]
    out.write_text(json.dumps(data))
    report = build_lut("torch-cpu", demo, out, resolutions=[24], profiler_options={"policy": quick_policy},
                       calibrate=False, progress=False, processes=0)
    assert report.measured == 3 and report.resumed == len(data["entries"])  # in-process: one pass
    assert set(dropped) <= set(LUT.load(out).entries)


def test_refuses_to_mix_profilers_or_spaces(demo_lut_path, demo, mbv3, quick_policy, tmp_path):
    out = tmp_path / "lut.json"
    out.write_text(demo_lut_path.read_text())
    with pytest.raises(LUTError, match="profiler 'torch-cpu' != 'ort-cpu'.*--force"):
        build_lut("ort-cpu", demo, out, resolutions=[24], calibrate=False, progress=False)
    with pytest.raises(LUTError, match="search space differs"):
        build_lut("torch-cpu", mbv3, out, resolutions=[160], calibrate=False, progress=False)


def test_corrupt_output_is_not_overwritten_without_force(demo, tmp_path):
    out = tmp_path / "lut.json"
    out.write_text("{ broken")
    with pytest.raises(LUTError, match="--force starts a new LUT"):
        build_lut("torch-cpu", demo, out, resolutions=[24], calibrate=False, progress=False)
    assert out.read_text() == "{ broken"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_resume_after_interruption(tmp_path, small_space, sig):
    """Start a real build, interrupt it mid-way, run the same command again: it completes the key set."""
    out, space_file = tmp_path / "lut.json", tmp_path / "space.json"
    space_file.write_text(json.dumps(small_space.to_dict()))  # 20 blocks at 28 px: whole builds in seconds
    cmd = [sys.executable, str(ROOT / "tools" / "profile_device.py"), "--profiler", "ort-cpu", "--space-file",
           str(space_file), "--resolutions", "28", "--quick", "--no-calibrate", "--pin-cpu", "none", "--out",
           str(out)]  # isolated, 2 passes
    # a shell's background job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: undo that
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300  # a safety net only: the signal waits for the saved state
    while len(saved(out, "entries")) < 5:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no block was saved"
        time.sleep(0.02)
    os.kill(proc.pid, sig)
    rc = proc.wait(timeout=60)
    if sig == signal.SIGINT:
        assert rc == 130 and b"run the same command again to resume" in proc.stderr.read()
    entries = saved(out, "entries")
    partial = len(entries)
    assert partial >= 5 and not all(e.get("passes") == 2 for e in entries.values()), \
        "the build should have been killed part-way"
    LUT.load(out)  # the file left by the killed process is valid
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    lut = LUT.load(out)
    assert set(lut.entries) == {d.key for d in small_space.all_layers([28])}
    assert all(e["passes"] == 2 for e in lut.entries.values())
    resumed = int(done.stdout.split(" resumed from the file")[0].rsplit(", ", 1)[-1])
    assert resumed >= partial  # nothing saved before the kill was measured again


@pytest.mark.slow
def test_noisy_entries_are_measured_again_in_isolation(small_space, quick_policy, tmp_path):
    """With a CV threshold nothing meets, every entry gets a third, isolated measurement."""
    out = tmp_path / "lut.json"
    report = build_lut("torch-cpu", small_space, out, resolutions=[24], profiler_options={"policy": quick_policy},
                       calibrate=False, progress=False, processes=2, chunk=100, cv_threshold=-1.0)
    entries = LUT.load(out).entries
    assert all(e["passes"] == 2 for e in entries.values())
    assert report.measured == 2 * len(entries)
    # every entry was measured a third time, in isolation (whether that median is the one kept, the lowest
    # of the three, is up to the host's noise: asserting that some was kept failed on a quiet machine)
    assert all(e["isolated_retries"] == 1 for e in entries.values())
