"""The device agent, for real: its own virtual environment without torch, a real process on a loopback socket.

Everything hwnas measures through ``--device`` goes through here: LUT builds, whole networks, finalize's verdict.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwnas_agent.client import AgentClient, AgentError
from hwnas_agent.protocol import MAGIC, digest, recv, send

ROOT = Path(__file__).resolve().parents[1]
HOST_SITE = Path(__import__("numpy").__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def agent_venv(tmp_path_factory) -> Path:
    """A venv with only onnxruntime, numpy (linked from this one, no download) and the agent's wheel."""
    base = tmp_path_factory.mktemp("agent-venv")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    for name in ("numpy", "numpy.libs", "onnxruntime", "flatbuffers", "packaging", "sympy", "mpmath"):
        if (HOST_SITE / name).exists():
            (site / name).symlink_to(HOST_SITE / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(ROOT / "agent")], check=True, capture_output=True)
    wheel = next(wheels.glob("hwnas_agent-*.whl"))
    # installing the wheel by hand is what pip does for a pure-Python wheel: unzip into site-packages + a script
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return venv


def test_the_agent_venv_has_no_torch_and_no_hwnas(agent_venv):
    py = str(agent_venv / "bin" / "python")
    for mod in ("torch", "hwnas"):
        r = subprocess.run([py, "-c", f"import {mod}"], capture_output=True, text=True, cwd="/")
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, f"{mod} importable in the agent's venv"
    r = subprocess.run([py, "-m", "hwnas_agent", "fingerprint"], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    fp = json.loads(r.stdout)
    assert fp["onnxruntime"] and "CPUExecutionProvider" in fp["providers_available"] and fp["cpu_count"] >= 1


class Agent:
    """A real ``hwnas-agent serve`` process of the torch-free venv, on 127.0.0.1."""

    def __init__(self, venv: Path, workdir: Path, token: Path, *extra: str):
        self.venv, self.workdir, self.token, self.extra = venv, workdir, token, extra
        self.port = 0
        self.proc = None

    def start(self) -> "Agent":
        cmd = [str(self.venv / "bin" / "python"), "-m", "hwnas_agent", "serve", "--port", str(self.port),
               "--token-file", str(self.token), "--workdir", str(self.workdir), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        line = self.proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, (line, self.proc.stderr.read() if self.proc.poll() else "")
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        return self

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def models(self) -> int:
        return len(list((self.workdir / "models").glob("*.onnx"))) + len(list((self.workdir / "models").glob("*.ort")))


@pytest.fixture(scope="module")
def token(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "token"
    path.write_text("0123456789abcdef-test-token\n")
    return path


@pytest.fixture(scope="module")
def agent(agent_venv, tmp_path_factory, token):
    a = Agent(agent_venv, tmp_path_factory.mktemp("agent-work"), token, "--max-file-mb", "1").start()
    yield a
    a.kill()


def tiny_onnx(tmp_path: Path) -> Path:
    """A one-conv ONNX model exported by torch (what hwnas sends)."""
    import torch

    from hwnas.profilers._ort import export_onnx

    path = tmp_path / "conv.onnx"
    path.write_bytes(export_onnx(torch.nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16)))
    return path


def test_refused_requests_leave_the_agent_serving(agent, token, tmp_path):
    model = tiny_onnx(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-agents-token-0123456789")
    with pytest.raises(AgentError, match="authentication failed"):
        AgentClient(agent.url, wrong).connect()
    with pytest.raises(ValueError, match="cannot read the token file"):
        AgentClient(agent.url, tmp_path / "missing")
    # garbage instead of a frame: refused, connection closed
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
        recv(s)  # the hello
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply, _ = recv(s)
        assert not reply["ok"] and "not an hwnas-agent frame" in reply["error"]
    c = AgentClient(agent.url, token).connect()
    # unknown request: an error, and the same connection goes on
    assert "unknown request" in c.request({"op": "exec", "code": "import os"})["error"]
    # a path instead of a digest: refused (the agent only times files it was sent, by their SHA-256)
    r = c.request({"op": "time", "sha256": "../../../etc/passwd", "settings": {}})
    assert not r["ok"] and "not by a path" in r["error"]
    # not a model file (code) under a correct digest: refused
    code = b"import os; os.system('true')"
    r = c.request({"op": "put", "sha256": digest(code), "format": "onnx"}, code)
    assert not r["ok"] and "not an ONNX model" in r["error"]
    c.close()
    # larger than --max-file-mb 1: refused, the connection closed (it cannot resync past the payload)
    big = b"\x08" + os.urandom(2 * 1024 * 1024)
    c = AgentClient(agent.url, token).connect()
    send(c.sock, {"op": "put", "sha256": digest(big), "format": "onnx", "payload": len(big)})
    reply, _ = recv(c.sock)
    assert not reply["ok"] and "exceeds the limit" in reply["error"]
    c.close()
    assert not list(agent.workdir.rglob("*.tmp")) and all(p.parent.name == "models" or p.is_dir()
                                                          for p in agent.workdir.rglob("*"))
    # still serving: a good client times the model
    c = AgentClient(agent.url, token)
    reply = c.time(model.read_bytes(), {"threads": 1, "pin": "auto", "policy": {"max_time_s": 0.05}})
    c.close()
    m = reply["measurement"]
    assert m["median_ms"] > 0 and m["n"] >= 5 and reply["providers"] == ["CPUExecutionProvider"]
    assert reply["pinning"].startswith("pinned to cpu") or os.cpu_count() == 1


def test_cli_device_errors(agent, token, tmp_path):
    from tests.conftest import cli_here

    r = cli_here("measure", "--profiler", "torch-cpu", "--space", "demo", "--sample", "1", "--device", agent.url,
                 "--token-file", str(token))
    assert r.returncode == 2 and "times on this host" in r.stderr and "ort-cpu" in r.stderr
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device",
                 f"tcp://127.0.0.1:{free}", "--token-file", str(token))
    assert r.returncode == 3 and "cannot be reached" in r.stderr and "hwnas-agent serve" in r.stderr
    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device",
                 "http://x", "--token-file", str(token))
    assert r.returncode == 2 and "tcp://HOST:PORT" in r.stderr
    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--token-file", str(token))
    assert r.returncode == 2 and "--token-file goes with --device" in r.stderr


def _build(space, out, quick_policy, processes=1, calibrate=False, **kw):
    from hwnas.measure import profiler_options
    from hwnas.profiling import build_lut

    return build_lut("ort-cpu", space, out, resolutions=[24], profiler_options=profiler_options(1, policy=quick_policy),
                     calibrate=calibrate, progress=False, command="pytest", processes=processes, **kw)


@pytest.fixture(scope="module")
def device_lut(agent, token, demo, quick_policy, tmp_path_factory):
    """An ort-cpu LUT of the demo space at 24 px built through the agent, calibrated, with its drift reference."""
    from hwnas.measure import target_device

    out = tmp_path_factory.mktemp("dev-lut") / "device.json"
    before = agent.models()
    with target_device(agent.url, str(token)):
        _build(demo, out, quick_policy, calibrate=True, calib_archs=6)
    assert agent.models() > before  # the blocks really went to the device
    return out


def test_a_lut_built_through_the_agent_has_the_structure_of_a_local_one(device_lut, agent, token, demo,
                                                                       quick_policy, tmp_path):
    from hwnas.lut import LUT

    local = LUT.load(_build(demo, tmp_path / "local.json", quick_policy).path)
    dev = LUT.load(device_lut)
    assert set(dev.entries) == set(local.entries) and len(dev.entries) > 10
    fields = {"median_ms", "p10_ms", "p90_ms", "std_ms", "cv", "robust_cv", "n", "calls_per_sample", "attempts",
              "passes"}
    assert all(fields <= set(dev.entries[k]) and fields <= set(local.entries[k]) for k in local.entries)
    assert {k: dev.entries[k]["passes"] for k in dev.entries} == {k: local.entries[k]["passes"] for k in local.entries}
    assert set(dev.settings) - {"transport"} == set(local.settings)
    assert dev.settings["transport"] == f"hwnas-agent at {agent.url}"
    assert set(dev.fingerprint) >= set(local.fingerprint) - {"cpu_flags"}
    c = AgentClient(agent.url, token)
    fp = c.fingerprint()
    c.close()
    assert dev.fingerprint["cpu_model"] == fp["cpu_model"] and dev.fingerprint["onnxruntime"] == fp["onnxruntime"]
    assert dev.calibration and dev.calibration.get("complete") and dev.reference  # whole networks on the device too
