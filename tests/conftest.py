import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.lut import LUT
from hwnas.profiling import build_lut
from hwnas.space import get_space
from profilers.base import TimingPolicy

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


@pytest.fixture
def demo_lut(demo_lut_path) -> LUT:
    return LUT.load(demo_lut_path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)
