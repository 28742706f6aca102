"""The device agent's security and robustness holes of issue 47, each on a real ``hwnas-agent serve`` process of
the torch-free venv over a real loopback socket (127.0.0.1 only; every loop bounded in count and time).

1. a symbolic link in the agent's store was a model: opened, timed, and its target's mtime set (outside the work dir)
2. connections that never log in took the authenticated slots (600 s each): a real client was told "busy"
3. a deeply nested JSON header, ``threads: 1e999``: a traceback in the agent and the client dropped without a reply
4. start-up options not checked (negative sizes, NaN timeouts, /dev/zero or a FIFO as token file, a file as workdir)
5. a full disk on the device: the connection dropped with no reply and a temp file left in the store
"""
import os
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwnas_agent.client import AgentClient, AgentError
from hwnas_agent.protocol import MAGIC, digest, recv, send
from test_agent import Agent, tiny_onnx

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"threads": 1, "pin": None, "policy": {"max_time_s": 0.02, "min_time_s": 0.01, "warmup_s": 0.005}}


@pytest.fixture(scope="module")
def token(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "token"
    path.write_text("0123456789abcdef-security-token\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def agent(agent_venv, tmp_path_factory, token):
    a = Agent(agent_venv, tmp_path_factory.mktemp("agent-work"), token).start()
    yield a
    a.kill()


def _frame(body: bytes) -> bytes:
    return MAGIC + struct.pack(">I", len(body)) + body


def _closed(sock: socket.socket, within: float) -> bool:
    """True when the agent closes ``sock`` (EOF or reset) within ``within`` s; whatever it sends first is read."""
    sock.settimeout(within)
    end = time.monotonic() + within
    try:
        while time.monotonic() < end:
            if not sock.recv(65536):
                return True
    except (ConnectionError, OSError) as e:
        return not isinstance(e, socket.timeout)
    return False


def _stderr_so_far(agent: Agent) -> str:
    """What the agent logged so far (its stderr is a pipe: read without blocking)."""
    import fcntl

    fd = agent.proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        return agent.proc.stderr.read() or ""
    except (BlockingIOError, TypeError):
        return ""


# 1. symbolic links (and anything else the agent did not write) in its store ---------------------------------------

def test_a_symlink_in_the_store_is_never_opened_timed_or_touched(agent, token, tmp_path):
    data = tiny_onnx(tmp_path).read_bytes()
    sha = digest(data)
    outside = tmp_path / "outside.onnx"  # the right bytes even: the link, not the content, is what is refused
    outside.write_bytes(data)
    os.utime(outside, (1_000_000_000, 1_000_000_000))
    models = agent.workdir / "models"
    link = models / f"{sha}.onnx"
    link.symlink_to(outside)
    c = AgentClient(agent.url, token).connect()
    try:
        assert c.request({"op": "has", "sha256": [sha]})["have"] == [False]
        r = c.request({"op": "time", "sha256": sha, "settings": QUICK})
        assert not r["ok"] and r.get("missing"), r
        # the pairing reference as a link: refused the same way
        r = c.request({"op": "time", "sha256": sha, "settings": {**QUICK, "pair": {"sha256": sha, "calm_ms": 1.0}}})
        assert not r["ok"] and r.get("missing"), r
        assert outside.stat().st_mtime == 1_000_000_000 and outside.read_bytes() == data
        # a regular file whose bytes are not the digest it is named by is not that model either
        other = b"\x08" + os.urandom(64)
        (models / f"{digest(other)}.onnx").write_bytes(data)
        assert c.request({"op": "has", "sha256": [digest(other)]})["have"] == [False]
        # a hard link to a file elsewhere (a utime would change the outside file): not one the agent wrote
        hard_src = models.parent / "elsewhere.onnx"
        hard_src.write_bytes(other)
        os.utime(hard_src, (1_000_000_000, 1_000_000_000))
        os.unlink(models / f"{digest(other)}.onnx")
        os.link(hard_src, models / f"{digest(other)}.onnx")
        assert c.request({"op": "has", "sha256": [digest(other)]})["have"] == [False]
        assert hard_src.stat().st_mtime == 1_000_000_000
        # sent for real, the model replaces the link with a file of the agent's own; the outside file is untouched
        reply = c.time(data, QUICK)
        assert reply["measurement"]["median_ms"] > 0
        assert not link.is_symlink() and stat.S_ISREG(link.lstat().st_mode) and link.read_bytes() == data
        assert outside.stat().st_mtime == 1_000_000_000
        assert c.request({"op": "has", "sha256": [sha]})["have"] == [True]
    finally:
        c.close()
    assert "Traceback" not in _stderr_so_far(agent)


# 2. connections that never log in ---------------------------------------------------------------------------------

def _idle(port: int, n: int) -> list:
    """``n`` connections that read the agent's hello and then say nothing (before the fix: each held a slot)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        recv(s)  # the hello (or, once over a cap, the refusal): the agent's thread for it has started
    return socks


def test_connections_that_never_log_in_do_not_lock_out_a_client_that_does(agent_venv, tmp_path, token):
    a = Agent(agent_venv, tmp_path / "work", token).start()  # the defaults: 8 logged-in clients, 32 logging in
    idle = []
    try:
        idle = _idle(a.port, 12)  # more than the 8 measuring slots
        c = AgentClient(a.url, token).connect()  # was: "busy with the most connections it takes; retry later"
        assert c.fingerprint()["cpu_count"] >= 1
        c.close()
    finally:
        for s in idle:
            s.close()
        a.kill()


def test_a_client_that_never_finishes_logging_in_is_cut_off_at_the_handshake_deadline(agent_venv, tmp_path, token):
    a = Agent(agent_venv, tmp_path / "work", token, "--handshake-timeout", "1.5").start()
    try:
        silent = _idle(a.port, 1)[0]
        trickle = _idle(a.port, 1)[0]
        frame = _frame(b'{"op":"auth","protocol":1,"nonce":"' + b"0" * 32 + b'","proof":"' + b"0" * 64 + b'"}')
        t0 = time.monotonic()
        cut = False
        for i in range(50):  # one byte every 0.1 s: each read is quick, the whole handshake is not
            try:
                trickle.sendall(frame[i:i + 1])
            except OSError:
                cut = True
                break
            trickle.settimeout(0.1)
            try:
                if trickle.recv(1) == b"":
                    cut = True
                    break
            except socket.timeout:
                pass
            except OSError:
                cut = True
                break
        took = time.monotonic() - t0
        assert cut and 1.0 < took < 4.0, (cut, took)
        assert _closed(silent, 5)
        trickle.close()
        silent.close()
        c = AgentClient(a.url, token).connect()
        assert c.fingerprint()["cpu_count"] >= 1 and a.proc.poll() is None
        c.close()
    finally:
        a.kill()
    log = a.proc.stderr.read()
    assert "did not log in within 1.5 s (--handshake-timeout)" in log and "Traceback" not in log, log


def test_connections_logging_in_are_capped_apart_from_the_logged_in_clients(agent_venv, tmp_path, token):
    a = Agent(agent_venv, tmp_path / "work", token, "--max-handshakes", "3", "--handshake-timeout", "2").start()
    idle = []
    try:
        c = AgentClient(a.url, token).connect()  # logged in before the flood: not counted against it
        idle = _idle(a.port, 3)
        with socket.create_connection(("127.0.0.1", a.port), timeout=10) as s:  # a fourth: refused at once
            reply, _ = recv(s)
            assert not reply["ok"] and "3 connections logging in already; retry in 2 s" in reply["error"], reply
            assert _closed(s, 5)
        with pytest.raises(AgentError, match="refused the connection: the agent has 3 connections logging in"):
            AgentClient(a.url, token).connect()
        assert c.fingerprint()["cpu_count"] >= 1  # the logged-in client is served all along
        assert all(_closed(s, 5) for s in idle)  # cut off at their deadline: the places are free again
        d = AgentClient(a.url, token).connect()
        assert d.fingerprint()["cpu_count"] >= 1
        d.close()
        c.close()
    finally:
        for s in idle:
            s.close()
        a.kill()


# 3. malformed requests: an error reply, the connection closed cleanly, the agent serving on -----------------------

DEEP = b"[" * 30_000 + b"]" * 30_000  # 60 KB: under the 64 KiB header limit, 30,000 levels deep


def test_a_deeply_nested_header_before_login_is_answered_and_closed(agent, token):
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as s:
        recv(s)  # the hello
        s.sendall(_frame(DEEP))
        reply, _ = recv(s)
        assert not reply["ok"] and "nested too deeply" in reply["error"], reply
        assert _closed(s, 10)
    c = AgentClient(agent.url, token).connect()
    assert c.fingerprint()["cpu_count"] >= 1
    c.close()


@pytest.mark.parametrize("body, said", [
    (DEEP, "nested too deeply"),
    (b'{"op":"has","sha256":' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested too deeply"),
    (b'{"op":"time","sha256":"' + b"0" * 64 + b'","settings":{"threads":1e999}}', "not a finite number"),
    (b'{"op":"time","sha256":"' + b"0" * 64 + b'","settings":{"threads":NaN}}', "not a finite number"),
    (b'{"op":"fingerprint","x":' + b"9" * 5000 + b"}", "not JSON"),
])
def test_a_malformed_header_after_login_is_answered_and_closed(agent, token, body, said):
    c = AgentClient(agent.url, token).connect()
    try:
        c.sock.sendall(_frame(body))
        reply, _ = recv(c.sock)
        assert not reply["ok"] and said in reply["error"], reply
        assert _closed(c.sock, 10)
    finally:
        c.close()
    c = AgentClient(agent.url, token).connect()
    assert c.fingerprint()["cpu_count"] >= 1  # the agent serves on
    c.close()


def test_bad_settings_of_a_stored_model_get_an_error_and_the_connection_goes_on(agent, token, tmp_path):
    """A thread count or pin of the wrong kind was an OverflowError (inf) in the agent, or a worker process
    left running (Worker() raised after starting it)."""
    data = tiny_onnx(tmp_path).read_bytes()
    c = AgentClient(agent.url, token).connect()
    try:
        sha = c.upload(data)
        for settings, said in (({"threads": 1e300}, "settings.threads"), ({"threads": 0}, "settings.threads"),
                               ({"threads": True}, "settings.threads"), ({"threads": 1, "pin": 1e300}, "settings.pin"),
                               ({"threads": 1, "pin": [1]}, "settings.pin")):
            r = c.request({"op": "time", "sha256": sha, "settings": settings})
            assert not r["ok"] and said in r["error"], (settings, r)
        assert c.request({"op": "time", "sha256": sha, "settings": QUICK})["ok"]
    finally:
        c.close()
    assert "Traceback" not in _stderr_so_far(agent)


# 4. start-up options: each refused at start in one line naming it, exit 2 -----------------------------------------

def _serve_cli(*args: str) -> subprocess.CompletedProcess:
    """``hwnas-agent serve ...`` bounded in time (an option accepted by mistake would serve until killed) and in
    memory (a token file read without end was a MemoryError)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run([sys.executable, "-m", "hwnas_agent", "serve", "--port", "0", *args], capture_output=True,
                          text=True, cwd=ROOT / "agent", timeout=30, preexec_fn=limit)


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "fifo", 0o600)
    return str(tmp / "fifo")


def _a_file(tmp: Path) -> str:
    (tmp / "file").write_text("mine\n")
    return str(tmp / "file")


def _models_a_file(tmp: Path) -> str:
    (tmp / "wd").mkdir()
    (tmp / "wd" / "models").write_text("mine\n")
    return str(tmp / "wd")


SERVE_CASES = [
    (lambda t: ["--max-file-mb", "-1"], "argument --max-file-mb: expected a whole number of MiB >= 1, got '-1'"),
    (lambda t: ["--max-file-mb", "0"], "argument --max-file-mb: expected a whole number of MiB >= 1, got '0'"),
    (lambda t: ["--max-store-mb", "-5"], "argument --max-store-mb: expected a whole number of MiB >= 1"),
    (lambda t: ["--idle-timeout", "nan"], "argument --idle-timeout: expected a number of seconds > 0"),
    (lambda t: ["--idle-timeout", "-1"], "argument --idle-timeout: expected a number of seconds > 0"),
    (lambda t: ["--idle-timeout", "inf"], "argument --idle-timeout: expected a number of seconds > 0"),
    (lambda t: ["--handshake-timeout", "0"], "argument --handshake-timeout: expected a number of seconds > 0"),
    (lambda t: ["--handshake-timeout", "nan"], "argument --handshake-timeout: expected a number of seconds > 0"),
    (lambda t: ["--max-handshakes", "0"], "argument --max-handshakes: expected a whole number >= 1, got '0'"),
    (lambda t: ["--token-file", "/dev/zero"], "argument --token-file: the token file '/dev/zero' is a character "
                                              "device, not a regular file"),
    (lambda t: ["--token-file", _fifo(t)], "is a FIFO (named pipe), not a regular file"),
    (lambda t: ["--workdir", _a_file(t)], "argument --workdir: TMP/file is a file, not a directory; give a directory"),
    (lambda t: ["--workdir", _models_a_file(t)], "argument --workdir: TMP/wd/models is a file, not a directory"),
]


@pytest.mark.parametrize("args_of, said", SERVE_CASES, ids=[c[1][:40] for c in SERVE_CASES])
def test_a_start_up_option_that_cannot_work_is_refused_in_one_line(args_of, said, tmp_path, token):
    args = args_of(tmp_path)
    if "--token-file" not in args:
        args += ["--token-file", str(token)]
    if "--workdir" not in args:
        args += ["--workdir", str(tmp_path / "work")]
    r = _serve_cli(*args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert lines[0].startswith("hwnas-agent serve: error: ") and said.replace("TMP", str(tmp_path)) in lines[0], lines
    assert "(see `hwnas-agent serve --help`)" in lines[0] and "listening" not in r.stdout


# 5. a full disk on the device -------------------------------------------------------------------------------------

def test_a_full_disk_on_the_device_is_answered_cleaned_up_and_named_on_the_host(agent_venv, token, tmp_path):
    from fullfs import small_disk
    from hwnas.profilers.base import ProfilerUnavailable
    from hwnas.profilers._remote import RemoteDevice

    big = b"\x08" + os.urandom(256 * 1024)  # looks like ONNX to the agent's first gate; larger than the disk
    with small_disk(tmp_path / "disk", "128k") as resize:
        a = Agent(agent_venv, tmp_path / "disk" / "work", token).start()
        try:
            c = AgentClient(a.url, token).connect()
            with pytest.raises(AgentError) as e:
                c.upload(big)
            said = str(e.value)
            assert "No space left on device" in said and "free space" in said and "check it is running" not in said
            assert not [p for p in (a.workdir / "models").iterdir() if p.name.endswith(".tmp")]
            assert c.fingerprint()["cpu_count"] >= 1  # the same connection goes on
            # the host's profiler link names the cause too (it was "dropped the connection ...; check it is running")
            with pytest.raises(ProfilerUnavailable, match="No space left on device"):
                RemoteDevice(a.url, token).time(big, QUICK)
            resize("4m")  # space freed: the same upload now works
            assert c.upload(big) == digest(big) and (a.workdir / "models" / f"{digest(big)}.onnx").is_file()
            c.close()
            assert a.proc.poll() is None
        finally:
            a.kill()
        log = a.proc.stderr.read()
        assert "No space left on device" in log and "Traceback" not in log, log
