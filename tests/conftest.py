import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.latency.lut import LUT
from hwnas.measuring.profiling import build_lut
from hwnas.spaces.base import get_space
from hwnas.profilers.base import TimingPolicy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mbv3():
    return get_space("mbv3")


@pytest.fixture(scope="session")
def demo():
    return get_space("demo")


@pytest.fixture(scope="session")
def quick_policy():
    return TimingPolicy.quick()


@pytest.fixture(scope="session")
def demo_lut_path(tmp_path_factory, demo, quick_policy) -> Path:
    """A real LUT of the demo space at 24 px, measured with torch-cpu (short timing runs)."""
    out = tmp_path_factory.mktemp("lut") / "demo-torch-cpu.json"
    build_lut("torch-cpu", demo, out, resolutions=[24], profiler_options={"policy": quick_policy},
              calibrate=False, progress=False, command="pytest fixture", processes=0)
    return out


@pytest.fixture(scope="session")
def small_space():
    """The demo space cut to two stages (20 blocks per resolution): builds that must run whole, in seconds."""
    import json

    from hwnas.spaces.mbv3 import MBv3Space

    d = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    return MBv3Space.from_dict({**d, "name": "demo-2-stages", "stages": d["stages"][:2], "depths": [1, 2],
                                  "expands": [2, 3]})


NEWCOMER_ARGS = ("--space", "demo", "--epochs", "1", "--population", "6", "--generations", "1")  # the supernet path


@pytest.fixture(scope="session")
def newcomer_demo(tmp_path_factory) -> dict:
    """``hwnas demo --quick`` run in this process as a newcomer whose CPU matches no shipped LUT: the demo
    builds its LUT here (isolated pinned workers, one pass, calibration, drift reference), then trains,
    searches and finalizes. What this process's affinity and torch threads were before and after is kept:
    the build must leave them alone. test_demo checks the run; the LUT is the suite's calibrated LUT."""
    import contextlib
    import io

    import torch

    from hwnas.app.cli import main

    out = tmp_path_factory.mktemp("newcomer") / "demo"
    before = (os.sched_getaffinity(0), torch.get_num_threads())
    saved = os.environ.get("HWNAS_IGNORE_SHIPPED_LUTS")
    os.environ["HWNAS_IGNORE_SHIPPED_LUTS"] = "1"
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            rc = main(["demo", "--out", str(out), *NEWCOMER_ARGS, "--quick"])
    finally:
        if saved is None:
            del os.environ["HWNAS_IGNORE_SHIPPED_LUTS"]
        else:
            os.environ["HWNAS_IGNORE_SHIPPED_LUTS"] = saved
    after = (os.sched_getaffinity(0), torch.get_num_threads())
    lut = out / "lut_ort-cpu_demo.json"
    assert lut.is_file(), stdout.getvalue()[-3000:]
    copy = out.parent / "lut-as-built.json"  # what the first run built, whatever later tests do in `out`
    copy.write_bytes(lut.read_bytes())
    return {"out": out, "rc": rc, "stdout": stdout.getvalue(), "before": before, "after": after, "lut": copy}


@pytest.fixture(scope="session")
def demo_lut_build(tmp_path_factory) -> dict:
    """The demo's LUT step for a newcomer whose CPU matches no shipped LUT (``hwnas demo --quick --full-lut``),
    in this process: ``build_lut`` called as ``run_demo`` calls it (isolated pinned workers, one pass,
    calibration on 20 networks, the drift reference), at the demo space's smallest resolution so it takes
    seconds; the whole demo, every resolution, is the slow stage's (tests/test_demo.py). What this process's
    affinity and torch threads were before and after is kept: the build must leave them alone."""
    import torch

    from hwnas.app.demo import demo_profiler_options

    out = tmp_path_factory.mktemp("demo-lut") / "lut_ort-cpu_demo.json"
    space = get_space("demo")
    options = demo_profiler_options(quick=True)
    before = (os.sched_getaffinity(0), torch.get_num_threads())
    build_lut("ort-cpu", space, out, resolutions=[min(space.resolutions)], profiler_options=options, calib_archs=20,
              seed=0, command="pytest demo_lut_build", processes=1, progress=False)
    after = (os.sched_getaffinity(0), torch.get_num_threads())
    return {"lut": out, "before": before, "after": after}


@pytest.fixture(scope="session")
def calibrated_lut_path(demo_lut_build, tmp_path_factory) -> Path:
    """A complete ort-cpu LUT of the demo space as users' machines build it: isolated pinned workers (one
    pass), calibration on 20 networks and the drift reference; short timing runs. A copy: tests read it."""
    out = tmp_path_factory.mktemp("lut") / "demo-ort-cpu.json"
    out.write_bytes(demo_lut_build["lut"].read_bytes())
    return out


@pytest.fixture
def demo_lut(demo_lut_path) -> LUT:
    return LUT.load(demo_lut_path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def cli_here(*args: str) -> subprocess.CompletedProcess:
    """``hwnas ARGS`` through ``hwnas.app.cli.main`` in this process (no interpreter and torch start per call):
    the same code path as the console script, for the many quick error and help checks."""
    import contextlib
    import io

    from hwnas.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse: --help, or a refused flag value
            code = e.code if isinstance(e.code, int) else 2
    return subprocess.CompletedProcess(["hwnas", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """300 real digits images (30 per class) as a user's .npz file: enough to train for a few steps quickly."""
    import numpy as np

    from hwnas.evaluate.data import EMBEDDED

    blob = np.load(EMBEDDED["digits"])
    x, y = blob["x"], blob["y"]
    idx = np.concatenate([np.flatnonzero(y == c)[:30] for c in range(10)])
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=x[idx], y=y[idx])
    return str(path)


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory, demo, tiny_data):
    """A demo-space supernet trained for 3 epochs on 300 real digits (a few seconds): (path, config, report)."""
    from hwnas.evaluate.supernet import SupernetConfig, train_supernet

    out = tmp_path_factory.mktemp("sn") / "supernet.pt"
    cfg = SupernetConfig(data=tiny_data, epochs=3, batch_size=32, random_subnets=1, lr=0.2)
    report = train_supernet(demo, out, cfg, device="cpu", progress=False)
    return out, cfg, report


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_lut_path, tiny_supernet, demo):
    """A finished search over the demo space (24 px LUT) scored by the tiny supernet, with a budget."""
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import MBv3LatencyPredictor
    from hwnas.search import Constraints, run_search
    from hwnas.spaces.mbv3 import MBv3Arch

    lut = LUT.load(demo_lut_path)
    pred = MBv3LatencyPredictor(lut)
    _, fastest = pred.fastest()
    big = demo.largest()
    largest = pred.predict(MBv3Arch(demo, 24, big.width, big.kernels, big.expands))  # the LUT covers 24 px only
    budget = fastest + 0.35 * (largest - fastest)  # as the demo picks it: feasible archs exist whatever the timings
    out = tmp_path_factory.mktemp("run") / "search"
    run_search(demo_lut_path, out, evaluator="supernet", evaluator_options={"checkpoint": str(tiny_supernet[0])},
               population=8, generations=2, seed=0, constraints=Constraints(budget_ms=budget),
               progress=False, command="pytest tiny_run")
    return out


def pytest_terminal_summary(terminalreporter):
    """docs/reliability.md quotes how many generated inputs the fuzz suite (tests/test_fuzz.py) ran."""
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz is not None and fuzz.FUZZ_CASES["n"]:
        terminalreporter.write_line(f"fuzz: {fuzz.FUZZ_CASES['n']} generated inputs parsed or refused with "
                                    f"an input error")


RUNTIMES = ("openvino", "openvino.libs", "ai_edge_litert", "backports", "google", "ml_dtypes")  # optional on a device


@pytest.fixture(scope="session")
def agent_venv(tmp_path_factory) -> Path:
    """A venv with only onnxruntime, numpy, the optional runtimes OpenVINO and LiteRT when installed here (linked
    from this one, no download) and the agent's wheel."""
    return make_agent_venv(tmp_path_factory.mktemp("agent-venv"), RUNTIMES)


@pytest.fixture(scope="session")
def bare_agent_venv(tmp_path_factory) -> Path:
    """An agent venv with onnxruntime only: a device without OpenVINO or LiteRT."""
    return make_agent_venv(tmp_path_factory.mktemp("bare-agent-venv"), ())


def make_agent_venv(base: Path, runtimes: tuple[str, ...]) -> Path:
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    host_site = Path(__import__("numpy").__file__).resolve().parents[1]
    for name in ("numpy", "numpy.libs", "onnxruntime", "flatbuffers", "packaging", "sympy", "mpmath", *runtimes):
        if (host_site / name).exists():
            (site / name).symlink_to(host_site / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(ROOT / "agent")], check=True, capture_output=True)
    wheel = next(wheels.glob("hwnas_agent-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return venv


def saved(path, key: str) -> dict:
    """``key`` of a JSON file as last saved; {} before the first save (the file is replaced atomically, never
    half), so a test can poll a build it is about to kill."""
    try:
        return json.loads(Path(path).read_text())[key]
    except (OSError, ValueError, KeyError):
        return {}


MY_SPACE = {  # a user's own family, as a space file: no code
    "kind": "network", "name": "my-family", "stage_counts": [2, 3], "strides": [2, 2, 2],
    "widths": [[8, 16], [16, 24], [24, 32]],
    "layer_types": [["conv", "dwsep"], ["dwsep", "mbconv"], ["mbconv", "attention"]],
    "depths": [1, 2], "kernels": [3], "expands": [2], "connections": ["sequential", "residual"],
    "resolutions": [16], "stem_width": 8, "head_width": 32, "in_channels": 3, "num_classes": 4,
}


@pytest.fixture(scope="session")
def my_lut(tmp_path_factory):
    """A user's own network space file (MY_SPACE) and its quick ort-cpu LUT (built once per session)."""
    d = tmp_path_factory.mktemp("my")
    (d / "my.json").write_text(json.dumps(MY_SPACE))
    from hwnas.profilers.base import TimingPolicy

    build_lut("ort-cpu", get_space(d / "my.json"), d / "lut.json", profiler_options={"policy": TimingPolicy.quick()},
              calibrate=True, calib_archs=6, progress=False, command="pytest", processes=0)
    return d


def quick_lut(profiler: str, space, out: Path, processes: int = 2) -> LUT:
    """A quick-policy LUT of ``space`` at 24 px with ``profiler`` in ``processes`` fresh processes, checked whole:
    every distinct block of the space timed, every median positive."""
    build_lut(profiler, space, out, resolutions=[24], profiler_options={"policy": TimingPolicy.quick()},
              calibrate=False, progress=False, command="pytest", processes=processes)
    lut = LUT.load(out)
    assert lut.profiler == profiler and len(lut.entries) == len({d.key for d in space.all_layers([24])})
    assert all(e["median_ms"] > 0 for e in lut.entries.values())
    return lut
