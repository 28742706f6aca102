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
        os.chmod(self.token, 0o600)  # private, as `hwnas-agent token` writes it (the agent refuses others)
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
    wrong.chmod(0o600)  # private, or the client refuses it before the agent can
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
    from hwnas.measuring.measure import profiler_options
    from hwnas.measuring.profiling import build_lut

    return build_lut("ort-cpu", space, out, resolutions=[24], profiler_options=profiler_options(1, policy=quick_policy),
                     calibrate=calibrate, progress=False, command="pytest", processes=processes, **kw)


@pytest.fixture(scope="module")
def device_lut(agent, token, demo, quick_policy, tmp_path_factory):
    """An ort-cpu LUT of the demo space at 24 px built through the agent, calibrated, with its drift reference."""
    from hwnas.measuring.measure import target_device

    out = tmp_path_factory.mktemp("dev-lut") / "device.json"
    before = agent.models()
    with target_device(agent.url, str(token)):
        _build(demo, out, quick_policy, calibrate=True, calib_archs=6)
    assert agent.models() > before  # the blocks really went to the device
    return out


@pytest.mark.slow  # an end-to-end LUT build (the second stage runs it)
def test_a_lut_built_through_the_agent_has_the_structure_of_a_local_one(device_lut, agent, token, demo,
                                                                       quick_policy, tmp_path):
    from hwnas.latency.lut import LUT

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


def _wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _entries(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["entries"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_kill_the_agent_mid_build_restart_it_and_the_same_command_resumes(agent_venv, token, tmp_path):
    a = Agent(agent_venv, tmp_path / "work", token).start()
    lut = tmp_path / "lut.json"
    cmd = [sys.executable, "-m", "hwnas", "profile", "--profiler", "ort-cpu", "--space", "demo",
           "--resolutions", "24", "--quick", "--processes", "1", "--no-calibrate", "--out", str(lut),
           "--device", a.url, "--token-file", str(token)]
    build = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _wait_for(lambda: _entries(lut) >= 3, 300, "the first LUT entries")
        a.kill()
        out, err = build.communicate(timeout=120)
    finally:
        build.kill()
    assert build.returncode == 3, err
    assert f"the device agent at {a.url}" in err and "run the same command again" in err
    saved = _entries(lut)
    assert 3 <= saved < 52
    a.start()  # the same port and work directory
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    finally:
        a.kill()
    assert r.returncode == 0, r.stderr
    assert "52 entries" in r.stdout and f"{saved} resumed from the file" in r.stdout


def _search(lut_path: Path, tiny_supernet, out: Path) -> Path:
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import MBv3LatencyPredictor
    from hwnas.search import Constraints, run_search

    pred = MBv3LatencyPredictor(LUT.load(lut_path))
    _, fastest = pred.fastest()
    run_search(lut_path, out, evaluator="supernet", evaluator_options={"checkpoint": str(tiny_supernet[0])},
               population=6, generations=1, seed=0, constraints=Constraints(budget_ms=fastest * 3),
               progress=False, command="pytest agent")
    return out


@pytest.mark.slow
def test_finalize_measures_its_verdict_on_the_device(device_lut, agent, token, tiny_supernet, tmp_path):
    from hwnas.finalize import finalize
    from hwnas.measuring.measure import target_device

    run = _search(device_lut, tiny_supernet, tmp_path / "search")
    with target_device(agent.url, str(token)):
        report = finalize(run, tmp_path / "dist", processes=1, log=lambda *a, **k: None)
    lat = report.report["latency"]
    assert lat["verdict"] in ("PASS", "FAIL", "UNCERTAIN") and lat["measured"]["median_ms"] > 0 and lat["predicted_ms"] > 0
    assert lat["fingerprint_diff"] == {}  # the device that measured is the LUT's device
    onnx = (tmp_path / "dist" / "model.onnx").read_bytes()
    assert (agent.workdir / "models" / f"{digest(onnx)}.onnx").is_file()  # the file the verdict timed went there


@pytest.mark.slow
def test_an_offline_bundle_round_trip(agent_venv, small_space, tmp_path, quick_policy):
    from hwnas.measuring.bundle import BundleError, check_timings
    from hwnas.latency.lut import LUT
    from tests.conftest import cli_here

    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(small_space.to_dict()))
    flags = ["--profiler", "ort-cpu", "--space-file", str(space_file), "--resolutions", "24", "--quick",
             "--calib-archs", "5"]
    r = cli_here("profile", *flags, "--export-bundle", str(tmp_path / "bundle"))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["space_digest"] == small_space.digest and manifest["settings"]["policy"]["max_time_s"] == 0.1
    timings = tmp_path / "timings.json"
    run = [str(agent_venv / "bin" / "python"), "-m", "hwnas_agent", "run", str(tmp_path / "bundle"), "--out",
           str(timings)]
    # killed part-way, continued by the same command
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        _wait_for(lambda: timings.exists() and json.loads(timings.read_text())["results"], 300, "a first batch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    partial = json.loads(timings.read_text())
    assert not partial["complete"]
    r = cli_here("profile", *flags, "--import-timings", str(timings), "--out", str(tmp_path / "lut.json"))
    assert r.returncode == 2 and "incomplete" in r.stderr and "hwnas-agent run" in r.stderr
    done = subprocess.run(run, capture_output=True, text=True, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout and json.loads(timings.read_text())["complete"]
    r = cli_here("profile", *flags, "--import-timings", str(timings), "--out", str(tmp_path / "lut.json"))
    assert r.returncode == 0, r.stderr
    lut = LUT.load(tmp_path / "lut.json")
    assert len(lut.entries) == len(small_space.all_layers([24])) and lut.calibration["complete"] and lut.reference
    assert lut.fingerprint["cpu_model"] == partial["device"]["cpu_model"]
    # another space, or other settings, than the bundle's: refused, naming what differs
    with pytest.raises(BundleError, match="exported for space"):
        check_timings(timings, "ort-cpu", LUT.load(tmp_path / "lut.json").search_space().__class__.from_dict(
            {**small_space.to_dict(), "name": "other", "expands": [2]}), {"threads": 1, "pin_cpu": None,
                                                                          "policy": quick_policy})
    r = cli_here("profile", *flags[:-3], "--calib-archs", "5", "--import-timings", str(timings), "--out",
                 str(tmp_path / "lut2.json"))  # without --quick: another timing policy
    assert r.returncode == 2 and "policy" in r.stderr


def test_the_torch_device_flag_of_other_commands_is_not_an_agent(tmp_path):
    """supernet's --device names a torch device (cpu/cuda/auto): it never goes to the agent's switch."""
    from tests.conftest import cli_here

    r = cli_here("supernet", "--space", "demo", "--data", str(tmp_path / "missing.npz"), "--out",
                 str(tmp_path / "sn.pt"), "--device", "cpu")
    assert r.returncode == 2 and "internal error" not in r.stderr, r.stderr


def test_paired_with_an_offline_bundle_is_refused_before_any_work(tmp_path):
    """Pairing times a reference network beside every item, live; a bundle times each item on its own. Refused in
    one line (exit 2), naming both ways that work, before a single file is written."""
    import shutil

    from tests.conftest import cli_here

    bundle = tmp_path / "bundle"
    r = cli_here("profile", "--profiler", "ort-cpu", "--space", "demo", "--export-bundle", str(bundle), "--paired")
    assert r.returncode == 2 and not bundle.exists() and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--paired does not go with --export-bundle" in r.stderr
    assert "--device tcp://HOST:PORT" in r.stderr and "drop --paired for a plain bundle" in r.stderr
    timings = tmp_path / "timings.json"  # refused before the timings file is even read
    out = tmp_path / "lut.json"
    r = cli_here("profile", "--profiler", "ort-cpu", "--space", "demo", "--import-timings", str(timings), "--out",
                 str(out), "--paired")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    assert "--paired does not go with --import-timings" in r.stderr and "--device tcp://HOST:PORT" in r.stderr
    # importing (unpaired) timings into a LUT that was built paired would mix two ways of measuring in one LUT
    paired = tmp_path / "paired.json"
    shutil.copy(ROOT / "docs" / "fidelity" / "emulated-a76" / "lut_paired.json", paired)
    before = paired.read_bytes()
    r = cli_here("profile", "--profiler", "ort-cpu", "--space", "demo", "--import-timings", str(timings), "--out",
                 str(paired))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is a paired LUT" in r.stderr and "another --out" in r.stderr and paired.read_bytes() == before


EMULATED = ROOT / "scripts" / "emulated-arm64.sh"


def _emulated_device_or_skip() -> None:
    """The emulated aarch64 device ready (set up when it can be: ~15-30 s, cached), or skip saying why not."""
    import platform

    if platform.machine() != "x86_64":
        pytest.skip(f"the emulated aarch64 device runs on an x86_64 host, not {platform.machine()}")
    check = subprocess.run(["bash", str(EMULATED), "check"], capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        pytest.skip(f"emulated aarch64 device: {check.stdout.strip() or check.stderr.strip()}")
    if check.stdout.startswith("ready:"):
        return
    setup = subprocess.run(["bash", str(EMULATED), "setup"], capture_output=True, text=True, timeout=900)
    if setup.returncode != 0:
        why = [line for line in setup.stderr.splitlines() if "error" in line] or setup.stderr.splitlines()[-1:]
        pytest.skip(f"emulated aarch64 device cannot be set up: {' '.join(why) or f'exit {setup.returncode}'}")


@pytest.fixture
def emulated_agent(tmp_path, token):
    """``hwnas-agent serve`` on the emulated aarch64 device (qemu-user, Debian's arm64 Python, the aarch64
    onnxruntime wheel), the agent folder copied in as is (PYTHONPATH), on 127.0.0.1: (url, agent pid, work dir)."""
    import selectors

    _emulated_device_or_skip()
    workdir = tmp_path / "arm64-work"
    cmd = ["bash", str(EMULATED), "run", "python3", "-m", "hwnas_agent", "serve", "--port", "0",
           "--token-file", str(token), "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "agent")}  # nothing of the host's (x86) packages
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", env=env,
                            start_new_session=True)  # its workers too: the whole group is taken down below
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        line = proc.stdout.readline() if sel.select(timeout=120) else ""
        sel.close()
        assert "listening on 127.0.0.1:" in line, \
            f"the emulated agent did not start within 120 s: {line!r} {proc.stderr.read() if proc.poll() else ''}"
        port = int(line.split("127.0.0.1:")[1].split()[0])
        pid = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
        yield f"tcp://127.0.0.1:{port}", pid, workdir
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.mark.slow
def test_measure_on_the_emulated_aarch64_device(emulated_agent, token):
    """A foreign device for real: `hwnas measure --device` times a small demo network on the emulated Cortex-A76
    (~100x slower than the host: one network at the smallest resolution, the quick policy)."""
    url, pid, workdir = emulated_agent
    # the process that serves is the emulator running the arm64 Python, not a host interpreter
    assert Path(f"/proc/{pid}/exe").resolve().name.startswith("qemu-aarch64")
    r = subprocess.run([sys.executable, "-m", "hwnas", "measure", "--profiler", "ort-cpu", "--space", "demo",
                        "--sample", "1", "--resolution", "24", "--quick", "--json", "--device", url,
                        "--token-file", str(token)], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    fp, (row,) = report["fingerprint"], report["results"]
    assert fp["machine"] == "aarch64" and "aarch64" in fp["os"] and fp["cpu_model"] == "Cortex-A76", fp
    assert "asimd" in fp["cpu_flags"].split() and fp["transport"] == f"hwnas-agent at {url}"
    assert row["median_ms"] > 0 and row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
    assert row["n"] >= 5  # the timing policy's floor once max_time_s has passed
    assert len(list((workdir / "models").glob("*.onnx"))) == 1  # the network's file went to the device


def test_an_adb_device_says_the_transport_is_not_built_and_what_to_do(tmp_path):
    """--device adb://SERIAL: no such transport yet (profilers/_remote.py says where it goes): one line, exit 2,
    naming the two ways a phone is profiled today."""
    from tests.conftest import cli_here

    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device",
                 "adb://emulator-5554")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "adb transport is not built" in r.stderr and "adb forward tcp:7878 tcp:7878" in r.stderr
    assert "--export-bundle" in r.stderr and "docs/profiling.md" in r.stderr


def _agent_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas_agent", *args], capture_output=True, text=True,
                          cwd=ROOT / "agent", timeout=timeout)


def test_serve_refuses_bad_ports_and_token_files_in_one_line(tmp_path):
    """Port 99999 or -1 was a traceback (OverflowError); a world-readable token was served; a directory was
    answered with "create one with hwnas-agent token --out DIR"."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef-test-token\n")
    token.chmod(0o644)
    (tmp_path / "dir").mkdir()
    cases = [(["--port", "99999", "--token-file", str(token)], "expected a port number 0-65535"),
             (["--port", "-1", "--token-file", str(token)], "expected a port number 0-65535"),
             (["--port", "0", "--token-file", str(token)], "open to other users (mode 644); make it private: chmod 600"),
             (["--port", "0", "--token-file", str(tmp_path / "dir")], "is a directory; give the file itself")]
    for args, said in cases:
        r = _agent_cli("serve", "--workdir", str(tmp_path / "work"), *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and said in lines[-1] and "Traceback" not in r.stderr, (args, r.stderr)
    token.chmod(0o600)
    r = _agent_cli("serve", "--port", "0", "--host", "no-such-host.invalid", "--token-file", str(token),
                   "--workdir", str(tmp_path / "work"))
    assert r.returncode == 2 and "cannot listen on no-such-host.invalid:0" in r.stderr and "--host" in r.stderr, r.stderr


def test_a_port_that_never_greets_fails_the_handshake_in_bounded_time(tmp_path, token):
    """A listener that accepts and stays silent (another service, a hung agent) held `hwnas measure --device`
    for 600 s per read; the greeting now has its own short timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(AgentError, match="did not complete the handshake within 1 s"):
            AgentClient(url, token, handshake_timeout=1.0).connect()
        assert time.monotonic() - t0 < 10
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:abc", "tcp://127.0.0.1:99999", "tcp://[::1", "tcp://127.0.0.1:0"])
def test_malformed_device_urls_name_the_flag(url, token):
    from conftest import cli_here

    r = cli_here("measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device", url,
                 "--token-file", str(token))
    assert r.returncode == 2 and f"--device {url!r}: expected tcp://HOST:PORT" in r.stderr, r.stderr


def _hand_bundle(root: Path, **changes) -> Path:
    """A bundle directory with a manifest written by hand (validation comes before any model is read)."""
    root.mkdir()
    manifest = {"format": "hwnas-bundle", "version": 1, "settings": {"threads": 1}, "chunk": 24, "agree": 0.05,
                "extra_passes": 3, "items": [{"id": "k", "kind": "block", "passes": 2, "file": "models/a.onnx",
                                              "sha256": "0" * 64}]}
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_damaged_manifest_or_timings_file_is_one_line(tmp_path):
    """'items' not a list, an item without 'file' (TypeError/KeyError tracebacks before), chunk 0; a timings
    file to continue whose results are a list (AttributeError)."""
    cases = [({"items": "x"}, "'items' must be a non-empty list"),
             ({"items": [{"id": "k", "sha256": "0" * 64}]}, "item 0 needs 'id', 'file', 'sha256'"),
             ({"chunk": 0}, "'chunk' must be a whole number >= 1")]
    for i, (changes, said) in enumerate(cases):
        b = _hand_bundle(tmp_path / f"b{i}", **changes)
        r = _agent_cli("run", str(b), "--out", str(tmp_path / f"t{i}.json"), "--quiet")
        assert r.returncode == 2 and said in r.stderr and "export the bundle again" in r.stderr, (changes, r.stderr)
        assert "Traceback" not in r.stderr
    b = _hand_bundle(tmp_path / "ok")
    for n, data in enumerate(([1], {"format": "hwnas-timings", "device": {}, "results": [1]})):
        out = tmp_path / f"timings{n}.json"
        out.write_text(json.dumps(data))
        r = _agent_cli("run", str(b), "--out", str(out), "--quiet")
        assert r.returncode == 2 and f"{out} is damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_import_timings_refuses_a_damaged_timings_file_before_building(tmp_path):
    """A median of -1 was noticed only in the LUT written (naming the LUT); results as a list were "the bundle
    was exported with other flags"."""
    from conftest import cli_here

    for n, results in enumerate(({"k": {"runs": [{"median_ms": -1}]}}, [1])):
        t = tmp_path / f"timings{n}.json"
        t.write_text(json.dumps({"format": "hwnas-timings", "complete": True, "device": {}, "results": results,
                                 "manifest": json.loads((_hand_bundle(tmp_path / f"b{n}") / "manifest.json")
                                                        .read_text())}))
        out = tmp_path / f"lut{n}.json"
        r = cli_here("profile", "--profiler", "ort-cpu", "--space", "demo", "--import-timings", str(t), "--out", str(out))
        assert r.returncode == 2 and f"--import-timings {t} is damaged" in r.stderr, r.stderr
        assert not out.exists()
