"""``hwnas-agent serve``: time model files sent by hwnas over an authenticated TCP connection.

Security model: listens on 127.0.0.1 unless told ``--host``; every connection must prove it holds the shared
token (challenge-response, the token never crosses the wire); requests are JSON frames with a size limit, and
the only thing the agent ever does with a payload is store it as a model file, named by its SHA-256, inside its
work directory, and have onnxruntime time it. Nothing is unpickled, executed or written elsewhere. A request it
does not understand gets an error and the agent keeps serving.

Measuring: one connection = one fresh worker process (pinned, thread-limited, short-lived), and one measurement
at a time on the device (a lock), so two clients never time against each other.
"""
from __future__ import annotations

import os
import socket
import socketserver
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


class ModelStore:
    """Model files named by their digest under ``root``; the oldest are removed past ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.lock = threading.Lock()

    def path(self, sha: str) -> Optional[Path]:
        for fmt in ("onnx", "ort"):
            p = self.root / f"{sha}.{fmt}"
            if p.is_file():
                return p
        return None

    def put(self, sha: str, fmt: str, data: bytes) -> Path:
        dest = self.root / f"{sha}.{fmt}"
        with self.lock:
            tmp = self.root / f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dest)
            self._evict(keep=dest)
        return dest

    def _evict(self, keep: Path) -> None:
        files = sorted((p for p in self.root.iterdir() if p.suffix in (".onnx", ".ort")), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.max_bytes:
                break
            if p != keep:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)


class Handler(socketserver.BaseRequestHandler):
    server: "AgentServer"

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(self.server.idle_timeout)
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        if not self.server.slots.acquire(blocking=False):
            _reply(conn, {"ok": False, "error": "the agent is busy with the most connections it takes; retry later"})
            return
        worker: Optional[Worker] = None
        try:
            if not self._authenticate(conn, peer):
                return
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

    def _authenticate(self, conn: socket.socket, peer: str) -> bool:
        mine = nonce()
        send(conn, {"agent": "hwnas-agent", "protocol": PROTOCOL, "version": __version__, "features": list(FEATURES),
                    "nonce": mine})
        try:
            header, _ = recv(conn, 0, strict=True)
        except ProtocolError as e:
            log(f"{peer}: refused before authentication ({e})")
            _reply(conn, {"ok": False, "error": f"refused: {e}"})
            return False
        theirs = header.get("nonce")
        if header.get("op") != "auth" or not isinstance(theirs, str) or not (16 <= len(theirs) <= 128) \
                or not check_proof(self.server.token, "client", mine, theirs, header.get("proof")):
            time.sleep(0.2)  # slows guessing
            log(f"{peer}: authentication failed")
            send(conn, {"ok": False, "error": "authentication failed: this agent holds another token "
                                              "(give the host the agent's --token-file)"})
            return False
        if header.get("protocol") != PROTOCOL:
            send(conn, {"ok": False, "error": f"protocol {header.get('protocol')} != the agent's {PROTOCOL}: "
                                              f"install matching versions of hwnas and hwnas-agent"})
            return False
        send(conn, {"ok": True, "proof": proof(self.server.token, "server", mine, theirs)})
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
            if fmt not in ("onnx", "ort"):
                return {"ok": False, "error": "'put' takes format 'onnx' or 'ort'"}, worker
            if not is_digest(sha) or digest(payload) != sha:
                return {"ok": False, "error": "the payload does not match its SHA-256"}, worker
            if model_format(payload) != fmt:
                return {"ok": False, "error": f"refused: the payload is not an {fmt.upper()} model file"}, worker
            store.put(sha, fmt, payload)
            return {"ok": True}, worker
        if op == "time":
            sha, settings = header.get("sha256"), header.get("settings")
            if not is_digest(sha):
                return {"ok": False, "error": "refused: 'time' names a model by the SHA-256 it was sent under, "
                                              "not by a path"}, worker
            path = store.path(sha)
            if path is None:
                return {"ok": False, "error": f"no model {sha[:12]} here: send it first ('put')",
                        "missing": True}, worker
            if not isinstance(settings, dict):
                return {"ok": False, "error": "'time' needs a settings object"}, worker
            pair = settings.get("pair")
            if pair is not None:  # the reference model timed in alternation: named by digest, like the item
                ref = store.path(pair.get("sha256")) if isinstance(pair, dict) and is_digest(pair.get("sha256")) else None
                if ref is None:
                    return {"ok": False, "error": "the pairing reference model is not here: send it first ('put')",
                            "missing": True}, worker
                settings = {**settings, "pair": {"path": str(ref), "calm_ms": pair.get("calm_ms")}}
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
                os.utime(path)  # recently used: kept by the store's eviction
                reply = worker.time(path, settings)
            return {"ok": True, "measurement": reply["measurement"], "providers": reply["providers"],
                    "pinning": worker.pinning}, worker
        return {"ok": False, "error": f"unknown request {op!r}; this agent (protocol {PROTOCOL}) knows "
                                      f"fingerprint, has, put, time, bye"}, worker


class AgentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, token: bytes, workdir: Path, max_file_bytes: int = 256 * MiB,
                 max_store_bytes: int = 2048 * MiB, idle_timeout: float = 600.0, max_connections: int = 8):
        self.token = token
        self.workdir = workdir
        self.store = ModelStore(workdir / "models", max_store_bytes)
        self.max_file_bytes = max_file_bytes
        self.idle_timeout = idle_timeout
        self.device_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), Handler)
