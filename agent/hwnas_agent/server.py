"""``hwnas-agent serve``: time model files sent by hwnas over an authenticated TCP connection.

Security model (docs/profiling.md has it in full): listens on 127.0.0.1 unless told ``--host``; every connection
must prove it holds the shared token (challenge-response, the token never crosses the wire) within
``--handshake-timeout`` for the whole login, holding one of ``--max-handshakes`` places and no measuring slot
until it has; requests are JSON frames with a size limit, read strictly (too deep, NaN, Infinity refused), their
fields checked before use; the only thing the agent ever does with a payload is store it as a model file, named
by its SHA-256, inside its work directory (ModelStore: no symbolic or hard link is followed or counted as a
model, every name is checked against its digest), and have onnxruntime time it. Nothing is unpickled, executed
or written elsewhere. A request it does not understand, or cannot serve (a full disk), gets an error and the
agent keeps serving.

Measuring: one connection = one fresh worker process (pinned, thread-limited, short-lived), and one measurement
at a time on the device (a lock), so two clients never time against each other.
"""
from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from hwnas_agent import FEATURES, PROTOCOL, __version__, device
from hwnas_agent.protocol import (ProtocolError, check_proof, digest, is_digest, model_format, nonce, proof, recv,
                                  send)
from hwnas_agent.worker import Worker, WorkerDied, WorkerError

MiB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[hwnas-agent {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


MAX_THREADS = 1024


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _reply(conn: socket.socket, header: dict) -> None:
    """A last answer before closing: the client may be gone already, which is no error of ours."""
    try:
        send(conn, header)
    except (OSError, ProtocolError):
        pass


FORMATS = ("onnx", "ort", "tflite", "openvino")  # what a stored model may be (its file name's suffix)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FD = os.open in os.supports_dir_fd and os.replace in os.supports_dir_fd and os.unlink in os.supports_dir_fd


class ModelStore:
    """Model files named by their digest under ``root``; the oldest are removed past ``max_bytes``.

    A name here is a model only when it is a regular file the agent wrote: not a symbolic link (opened with
    O_NOFOLLOW, the store's folder too), not a hard link to a file elsewhere (one link), this user's, and holding
    exactly the bytes its digest names. Anything else under a model's name (put there by hand or by another
    program) is not a model: ``has`` says no, ``time`` says to send it, and a ``put`` replaces the name with a file
    of the agent's own. Every write, rename, removal and mtime of the store goes through a descriptor of the
    store's folder and of files the agent opened itself, so nothing outside the work directory is touched."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self._checked: dict[str, tuple] = {}  # digest -> (dev, ino, size, mtime) of the file whose bytes matched
        self.dir_fd: Optional[int] = None
        if _DIR_FD:
            self.dir_fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)

    def _name(self, name: str) -> "str | Path":
        return name if self.dir_fd is not None else self.root / name

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        if self.dir_fd is not None:
            return os.open(name, flags | _NOFOLLOW, mode, dir_fd=self.dir_fd)
        return os.open(self.root / name, flags | _NOFOLLOW, mode)

    def _mine(self, st: os.stat_result) -> bool:
        return (stat.S_ISREG(st.st_mode) and st.st_nlink == 1
                and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid()))

    def find(self, sha: str, touch: bool = False) -> Optional[Path]:
        """The model file named ``sha`` when the store holds it as a file of its own with those bytes, else None.
        ``touch``: mark it recently used (its mtime, set through the descriptor of the file itself)."""
        for fmt in FORMATS:
            name = f"{sha}.{fmt}"
            try:
                fd = self._open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except FileNotFoundError:
                continue
            except OSError as e:  # ELOOP: a symbolic link; EACCES: not ours to read
                log(f"{name} in the store is not a model this agent wrote ({e.strerror or e}); ignored")
                continue
            try:
                st = os.fstat(fd)
                if not self._mine(st):
                    log(f"{name} in the store is not a file this agent wrote (a "
                        f"{'hard link' if stat.S_ISREG(st.st_mode) else 'special file'} or another user's); ignored")
                    continue
                key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if self._checked.get(sha) != key:
                    h = hashlib.sha256()
                    while True:
                        chunk = os.read(fd, 1 << 20)
                        if not chunk:
                            break
                        h.update(chunk)
                    if h.hexdigest() != sha:
                        log(f"{name} in the store does not hold the bytes its name says (changed since); ignored")
                        continue
                if touch and os.utime in os.supports_fd:
                    os.utime(fd)
                    st = os.fstat(fd)
                self._checked[sha] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                return self.root / name
            finally:
                os.close(fd)
        return None

    def path(self, sha: str) -> Optional[Path]:
        return self.find(sha)

    def put(self, sha: str, fmt: str, data: bytes) -> Path:
        """Store ``data`` as ``sha.fmt``: written to a new temporary file of the store (never an existing name),
        then renamed over the name, which replaces whatever was there (a link is replaced, not followed). On an
        error (a full disk) the temporary file is removed and the error raised."""
        name = f"{sha}.{fmt}"
        with self.lock:
            tmp = f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                fd = self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                if self.dir_fd is not None:
                    os.replace(tmp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
                else:
                    os.replace(self.root / tmp, self.root / name)
            except BaseException:
                self._unlink(tmp)
                raise
            self._checked.pop(sha, None)
            self._evict(keep=name)
        return self.root / name

    def _unlink(self, name: str) -> None:
        try:
            if self.dir_fd is not None:
                os.unlink(name, dir_fd=self.dir_fd)
            else:
                os.unlink(self.root / name)
        except OSError:
            pass

    def _evict(self, keep: str) -> None:
        files = []
        with os.scandir(self.dir_fd if self.dir_fd is not None else self.root) as it:
            for e in it:
                if e.name.endswith(tuple(f".{f}" for f in FORMATS)) and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    files.append((st.st_mtime, e.name, st.st_size))
        files.sort()
        total = sum(size for _, _, size in files)
        for _, name, size in files:
            if total <= self.max_bytes:
                break
            if name != keep:
                total -= size
                self._unlink(name)

    def close(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


class Handler(socketserver.BaseRequestHandler):
    server: "AgentServer"

    def handle(self) -> None:
        conn: socket.socket = self.request
        srv = self.server
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        # Before login a connection holds one of --max-handshakes places (not a measuring slot) for at most
        # --handshake-timeout s in all, however slowly its bytes trickle in: a few silent or one-byte-a-second
        # clients used to take every slot for 600 s each and lock out the real one.
        if not srv.handshakes.acquire(blocking=False):
            log(f"{peer}: refused: {srv.max_handshakes} connections are logging in already (--max-handshakes)")
            conn.settimeout(1.0)
            _reply(conn, {"ok": False, "error": f"the agent has {srv.max_handshakes} connections logging in already; "
                                                f"retry in {srv.handshake_timeout:g} s"})
            return
        try:
            conn.settimeout(srv.handshake_timeout)
            if not self._authenticate(conn, peer, time.monotonic() + srv.handshake_timeout):
                return
        except socket.timeout:
            log(f"{peer}: did not log in within {srv.handshake_timeout:g} s (--handshake-timeout); closed")
            return
        except OSError:  # ConnectionError too: it went away before logging in
            return
        except Exception as e:  # noqa: BLE001 - an agent bug: one line in the log, the agent serves on
            log(f"{peer}: internal error before login ({type(e).__name__}: {e}); closed")
            return
        finally:
            srv.handshakes.release()
        # logged in, holding one of the measuring slots (taken by _authenticate)
        conn.settimeout(srv.idle_timeout)
        worker: Optional[Worker] = None
        try:
            while True:
                try:
                    header, payload = recv(conn, self.server.max_file_bytes, strict=True)
                except ProtocolError as e:
                    log(f"{peer}: refused a malformed request ({e}); closing the connection")
                    _reply(conn, {"ok": False, "error": f"refused: {e}"})
                    return
                op = header.get("op")
                if op == "bye":
                    return
                try:
                    reply, worker = self._answer(op, header, payload, worker)
                except WorkerError as e:
                    reply = {"ok": False, "error": str(e)}
                except (ValueError, TypeError, KeyError, OverflowError) as e:  # a field of the wrong type or value
                    reply = {"ok": False, "error": f"bad request {op!r}: {type(e).__name__}: {e}"}
                except WorkerDied as e:  # a new worker for the next request
                    worker = None
                    reply = {"ok": False, "error": str(e)}
                except Exception as e:  # noqa: BLE001 - an agent bug: answered in one line, never a dropped client
                    log(f"{peer}: internal error answering {op!r} ({type(e).__name__}: {e}); closing the connection")
                    _reply(conn, {"ok": False, "error": f"internal error of the agent answering {op!r} "
                                                        f"({type(e).__name__}: {e}); it serves on: connect again"})
                    return
                send(conn, reply)
        except (ConnectionError, socket.timeout):
            pass  # the client went away (or idled past the timeout): its worker goes with it
        except OSError as e:  # the socket failed under us (a reset): nothing left to answer on
            log(f"{peer}: connection lost ({e.strerror or e})")
        finally:
            if worker is not None:
                worker.close()
            self.server.slots.release()

    def _authenticate(self, conn: socket.socket, peer: str, deadline: float) -> bool:
        """The challenge-response, all of it by ``deadline``; True when the client proved it holds the token and
        got one of the measuring slots (the caller releases it)."""
        mine = nonce()
        send(conn, {"agent": "hwnas-agent", "protocol": PROTOCOL, "version": __version__, "features": list(FEATURES),
                    "nonce": mine})
        try:
            header, _ = recv(conn, 0, deadline=deadline, strict=True)
        except ProtocolError as e:
            log(f"{peer}: refused before authentication ({e})")
            _reply(conn, {"ok": False, "error": f"refused: {e}"})
            return False
        theirs = header.get("nonce")
        if header.get("op") != "auth" or not isinstance(theirs, str) or not (16 <= len(theirs) <= 128) \
                or not check_proof(self.server.token, "client", mine, theirs, header.get("proof")):
            time.sleep(0.2)  # slows guessing
            log(f"{peer}: authentication failed")
            _reply(conn, {"ok": False, "error": "authentication failed: this agent holds another token "
                                                "(give the host the agent's --token-file)"})
            return False
        if header.get("protocol") != PROTOCOL:
            _reply(conn, {"ok": False, "error": f"protocol {header.get('protocol')} != the agent's {PROTOCOL}: "
                                                f"install matching versions of hwnas and hwnas-agent"})
            return False
        if not self.server.slots.acquire(blocking=False):
            log(f"{peer}: refused: {self.server.max_connections} clients are logged in already")
            _reply(conn, {"ok": False, "error": f"the agent is busy with the most clients it takes "
                                                f"({self.server.max_connections}); retry later"})
            return False
        try:
            send(conn, {"ok": True, "proof": proof(self.server.token, "server", mine, theirs)})
        except BaseException:
            self.server.slots.release()
            raise
        return True

    def _answer(self, op: Any, header: dict, payload: bytes, worker: Optional[Worker]) -> tuple[dict, Optional[Worker]]:
        store = self.server.store
        if op == "fingerprint":
            return {"ok": True, "fingerprint": device.fingerprint(), "agent": __version__}, worker
        if op == "has":
            shas = header.get("sha256")
            if not isinstance(shas, list) or not all(is_digest(s) for s in shas) or len(shas) > 10000:
                return {"ok": False, "error": "'has' takes a list of SHA-256 hex digests"}, worker
            return {"ok": True, "have": [store.path(s) is not None for s in shas]}, worker
        if op == "put":
            sha, fmt = header.get("sha256"), header.get("format")
            if fmt not in FORMATS:
                return {"ok": False, "error": f"'put' takes a format of {', '.join(FORMATS)}"}, worker
            if not is_digest(sha) or digest(payload) != sha:
                return {"ok": False, "error": "the payload does not match its SHA-256"}, worker
            if model_format(payload) != fmt:
                return {"ok": False, "error": f"refused: the payload is not an {fmt.upper()} model file"}, worker
            try:
                store.put(sha, fmt, payload)
            except OSError as e:  # a full disk (ENOSPC, EDQUOT), a read-only one: said, not a dropped connection
                log(f"could not store model {sha[:12]} ({len(payload):,} bytes) in {store.root}: {e.strerror or e}")
                return {"ok": False, "error": f"could not store the model file ({len(payload):,} bytes) on the device: "
                                              f"{e.strerror or e} (in {store.root}); free space there, or give the "
                                              f"agent a --workdir on a disk with room or a lower --max-store-mb",
                        "store_error": True}, worker
            return {"ok": True}, worker
        if op == "time":
            sha, settings = header.get("sha256"), header.get("settings")
            if not is_digest(sha):
                return {"ok": False, "error": "refused: 'time' names a model by the SHA-256 it was sent under, "
                                              "not by a path"}, worker
            path = store.find(sha, touch=True)  # recently used: kept by the store's eviction
            if path is None:
                return {"ok": False, "error": f"no model {sha[:12]} here: send it first ('put')",
                        "missing": True}, worker
            if not isinstance(settings, dict):
                return {"ok": False, "error": "'time' needs a settings object"}, worker
            pair = settings.get("pair")
            if pair is not None:  # the reference model timed in alternation: named by digest, like the item
                ref_sha = pair.get("sha256") if isinstance(pair, dict) else None
                ref = store.find(ref_sha, touch=True) if is_digest(ref_sha) else None
                if ref is None:
                    return {"ok": False, "error": "the pairing reference model is not here: send it first ('put')",
                            "missing": True}, worker
                settings = {**settings, "pair": {"path": str(ref), "sha256": ref_sha, "calm_ms": pair.get("calm_ms")}}
            threads, pin = settings.get("threads", 1), settings.get("pin", "auto")
            if not _whole(threads, 1, MAX_THREADS):
                return {"ok": False, "error": f"settings.threads must be a whole number from 1 to {MAX_THREADS}, "
                                              f"got {threads!r:.40}"}, worker
            if not (pin is None or pin == "auto" or _whole(pin, 0, 65535)):
                return {"ok": False, "error": f"settings.pin must be null, 'auto' or a CPU index, got {pin!r:.40}"}, worker
            with self.server.device_lock:
                if worker is not None and (worker.threads, worker.pin) != (threads, pin):
                    worker.close()
                    worker = None
                if worker is None:
                    worker = Worker(threads, pin)
                reply = worker.time(path, settings, sha)  # the worker checks the bytes it loads against sha
            return {"ok": True, "measurement": reply["measurement"], "providers": reply["providers"],
                    "pinning": worker.pinning}, worker
        return {"ok": False, "error": f"unknown request {op!r}; this agent (protocol {PROTOCOL}) knows "
                                      f"fingerprint, has, put, time, bye"}, worker


class AgentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, token: bytes, workdir: Path, max_file_bytes: int = 256 * MiB,
                 max_store_bytes: int = 2048 * MiB, idle_timeout: float = 600.0, max_connections: int = 8,
                 handshake_timeout: float = 10.0, max_handshakes: int = 32):
        self.token = token
        self.workdir = workdir
        self.store = ModelStore(workdir / "models", max_store_bytes)
        self.max_file_bytes = max_file_bytes
        self.idle_timeout = idle_timeout
        self.device_lock = threading.Lock()
        self.max_connections, self.slots = max_connections, threading.BoundedSemaphore(max_connections)
        self.handshake_timeout = handshake_timeout
        self.max_handshakes, self.handshakes = max_handshakes, threading.BoundedSemaphore(max_handshakes)
        super().__init__((host, port), Handler)

    def server_close(self) -> None:
        super().server_close()
        self.store.close()
