"""The host's side of the agent protocol: connect, authenticate, send model files, ask for timings."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from hwnas_agent import PROTOCOL
from hwnas_agent.protocol import ProtocolError, check_proof, digest, model_format, nonce, proof, read_token, recv, send


class AgentError(RuntimeError):
    """The device agent cannot be reached, refused us, or dropped the connection; the message says what to do."""


HANDSHAKE_TIMEOUT = 30.0  # s: an agent greets at once; a port that stays silent is not one (was: 600 s per read)


def parse_url(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port); any other text is refused naming the flag."""
    want = f"--device {url!r}: expected tcp://HOST:PORT with PORT 1-65535 (e.g. tcp://127.0.0.1:7878)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # a port that is no number or out of range, a broken [IPv6] address
        raise ValueError(f"{want}; {e}") from None
    if parts.scheme != "tcp" or not parts.hostname or port is None or not 1 <= port <= 65535:
        raise ValueError(want)
    return parts.hostname, port


class AgentClient:
    """One authenticated connection to an agent: on the agent, one fresh measuring worker process."""

    def __init__(self, url: str, token_file: "str | Path", timeout: float = 600.0,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT):
        self.url = url
        self.host, self.port = parse_url(url)
        self.token = read_token(token_file)
        self.timeout = timeout
        self.handshake_timeout = min(timeout, handshake_timeout)
        self.sock: Optional[socket.socket] = None
        self.sent: set[str] = set()
        self.features: set[str] = set()
        self.version: Optional[str] = None

    def _lost(self, what: str) -> AgentError:
        self.close()
        return AgentError(f"the device agent at {self.url} {what}; check it is running (hwnas-agent serve), "
                          f"then run the same command again: finished measurements are kept and it resumes")

    def connect(self) -> "AgentClient":
        if self.sock is not None:
            return self
        try:
            sock = socket.create_connection((self.host, self.port), timeout=min(self.timeout, 30.0))
        except OSError as e:
            raise self._lost(f"cannot be reached ({e.strerror or e})") from None
        sock.settimeout(self.handshake_timeout)  # the greeting and the proof: a silent port fails in seconds
        self.sock = sock
        try:
            hello, _ = recv(sock)
            if hello.get("ok") is False and isinstance(hello.get("error"), str):  # too many logging in: busy
                self.close()
                raise AgentError(f"the device agent at {self.url} refused the connection: {hello['error']}")
            if hello.get("agent") != "hwnas-agent":
                raise AgentError(f"{self.url} is not an hwnas agent")
            if hello.get("protocol") != PROTOCOL:
                raise AgentError(f"the agent at {self.url} speaks protocol {hello.get('protocol')}, hwnas {PROTOCOL}: "
                                 f"install matching versions of hwnas and hwnas-agent")
            self.features = set(hello.get("features") or ())
            self.version = hello.get("version")
            mine = nonce()
            send(sock, {"op": "auth", "protocol": PROTOCOL, "nonce": mine,
                        "proof": proof(self.token, "client", mine, hello["nonce"])})
            reply, _ = recv(sock)
        except socket.timeout:
            raise self._lost(f"did not complete the handshake within {self.handshake_timeout:.0f} s (is that port "
                             f"an hwnas-agent, and not another service?)") from None
        except (ProtocolError, ConnectionError, OSError) as e:
            raise self._lost(f"broke off the handshake ({e})") from None
        sock.settimeout(self.timeout)
        if not reply.get("ok"):
            self.close()
            raise AgentError(f"the device agent at {self.url} refused the connection: {reply.get('error')}")
        if not check_proof(self.token, "server", mine, hello["nonce"], reply.get("proof")):
            self.close()
            raise AgentError(f"{self.url} did not prove it holds the token: not your agent")
        return self

    def request(self, header: dict, payload: bytes = b"", retry: bool = True) -> dict:
        """One request and its reply. Every request is idempotent, so a connection the agent closed while it
        was idle (its --idle-timeout) is opened again once; a second failure is the agent's."""
        self.connect()
        try:
            send(self.sock, header, payload)
            reply, _ = recv(self.sock)
        except (ProtocolError, ConnectionError, socket.timeout, OSError) as e:
            if retry and not isinstance(e, (ProtocolError, socket.timeout)):
                self.close()
                return self.request(header, payload, retry=False)
            if payload:  # an agent of before issue 47 dropped a model file its disk had no room for, silently
                raise self._lost(f"dropped the connection while receiving a model file of {len(payload):,} bytes "
                                 f"({e}); its log says why (a full disk under its --workdir, a file over its "
                                 f"--max-file-mb)") from None
            raise self._lost(f"dropped the connection ({e})") from None
        return reply

    def _checked(self, header: dict, payload: bytes = b"") -> dict:
        reply = self.request(header, payload)
        if not reply.get("ok"):
            raise AgentError(f"the device agent at {self.url}: {reply.get('error')}")
        return reply

    def fingerprint(self) -> dict[str, Any]:
        return self._checked({"op": "fingerprint"})["fingerprint"]

    def upload(self, data: bytes) -> str:
        """Send a model file unless the agent has it already; returns its digest."""
        sha = digest(data)
        if sha in self.sent:
            return sha
        fmt = model_format(data)
        if fmt is None:
            raise ValueError("not an ONNX, ORT-format, .tflite or packed OpenVINO IR model file")
        if not self._checked({"op": "has", "sha256": [sha]})["have"][0]:
            self._checked({"op": "put", "sha256": sha, "format": fmt}, data)
        self.sent.add(sha)
        return sha

    def time(self, data: bytes, settings: dict[str, Any], reference: Optional[bytes] = None) -> dict[str, Any]:
        """Time a model file on the device: {"measurement": {...}, "providers": [...], "pinning": "..."}.
        ``reference`` (with ``settings["pair"]["calm_ms"]``): the model timed in alternation with it."""
        if reference is not None and "pair" not in self.connect().features:
            raise AgentError(f"the device agent at {self.url} (hwnas-agent {self.version}) cannot pair measurements "
                             f"with a reference: install this hwnas's agent on the device (pip install ./agent)")

        def attempt() -> dict:
            sha = self.upload(data)
            s = dict(settings)
            if reference is not None:
                s["pair"] = {**settings["pair"], "sha256": self.upload(reference)}
            return self.request({"op": "time", "sha256": sha, "settings": s})

        reply = attempt()
        if not reply.get("ok") and reply.get("missing"):  # evicted or the agent restarted with a new work dir
            self.sent.clear()
            reply = attempt()
        if not reply.get("ok"):
            raise AgentError(f"the device agent at {self.url} could not time the model: {reply.get('error')}")
        return reply

    def close(self) -> None:
        if self.sock is not None:
            try:
                send(self.sock, {"op": "bye"})
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
