"""scripts/gpu_device_run.sh, the prepared GPU run: its plan, resume and time checks, checked here by --dry-run
(nothing runs, nothing is written). The run itself needs the device machine (issue 33)."""
import os
import subprocess

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "gpu_device_run.sh"
STEPS = ("env", "cuda-tests", "lut-graph-b1", "fid-graph-b1", "lut-eager-b1", "fid-eager-b1", "supernet-gpu",
         "supernet-cpu", "train-auto", "lut-graph-b32", "fid-graph-b32", "lut-mbv3-graph-b1")


def _plan(tmp_path, *args):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "HWNAS_GPU_WORK": str(tmp_path / "work")}
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, env=env, timeout=60)
    lines = {line.split()[1]: line for line in r.stdout.splitlines() if line.startswith("[")}
    return r, lines


def test_the_plan_lists_every_step_in_order_and_writes_nothing(tmp_path):
    r, lines = _plan(tmp_path)
    assert r.returncode == 0, r.stderr
    assert all(s in lines for s in STEPS) and list(lines)[:len(STEPS) - 3] == list(STEPS[:-3])
    assert "--profiler torch-cuda-graph --space demo --precision fp32 --batch-size 1" in lines["lut-graph-b1"]
    assert "--batch-size 32" in lines["lut-graph-b32"] and "--profiler torch-cuda " in lines["lut-eager-b1"]
    assert "bench_fidelity.py" in lines["fid-graph-b1"] and "--n 30" in lines["fid-graph-b1"]
    assert "--compute cuda" in lines["supernet-gpu"] and "--compute cpu" in lines["supernet-cpu"]
    assert "--resolutions 224" in lines["lut-mbv3-graph-b1"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_the_time_check_defers_what_does_not_fit(tmp_path):
    r, lines = _plan(tmp_path, "--budget-s", "100")
    assert lines["env"].startswith("[run]") and lines["cuda-tests"].startswith("[run]")
    assert lines["lut-graph-b1"].startswith("[deferred]") and "budget 100 s" in r.stdout
    _, lines = _plan(tmp_path)
    assert lines["train-auto"].startswith("[run]") and lines["lut-mbv3-graph-b1"].startswith("[deferred]")


def test_finished_steps_are_skipped_on_the_next_call(tmp_path):
    done = tmp_path / "work" / "done"
    done.mkdir(parents=True)
    for s in ("env", "cuda-tests", "lut-graph-b1"):
        (done / s).touch()
    r, lines = _plan(tmp_path)
    assert all(lines[s].startswith("[done]") for s in ("env", "cuda-tests", "lut-graph-b1"))
    assert lines["fid-graph-b1"].startswith("[run]")


def test_bad_arguments_are_refused(tmp_path):
    for args in (["--budget-s", "soon"], ["--fast"]):
        r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HWNAS_GPU_WORK": str(tmp_path / "w")})
        assert r.returncode == 2 and "gpu_device_run.sh:" in r.stderr
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HWNAS_TORCH": "conda"})
    assert r.returncode == 2 and "HWNAS_TORCH is system or pypi" in r.stderr
