"""The wire format between hwnas (the host) and the agent (the device), and its authentication.

A frame is ``b"HWNA"``, a 4-byte big-endian header length, a UTF-8 JSON header, then ``header["payload"]``
raw bytes (a model file) when the header says so. JSON only: nothing is unpickled or executed. Both sides
hold a shared token and prove it without sending it: HMAC-SHA256 over each other's fresh nonces
(challenge-response, mutual: a client learns it talks to an agent that knows the token too).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Any, Optional, Tuple

MAGIC = b"HWNA"
MAX_HEADER = 64 * 1024
MIN_TOKEN = 16
MAX_TOKEN_FILE = 4096  # bytes: `hwnas-agent token` writes 65


class ProtocolError(RuntimeError):
    """A frame that is not ours, too large, or cut short: the connection cannot be trusted any further."""


def read_token(path: "str | Path", private: bool = True) -> bytes:
    """The shared token from ``path``: at least 16 characters, surrounding white space ignored. ``private``
    (both sides: on the agent it guards the device, and on the host whoever reads it can drive the device
    too): refused when other users may read or replace it, as ssh refuses such a key."""
    import errno
    import os
    import stat

    if Path(path).is_dir():
        raise ValueError(f"the token file {str(path)!r} is a directory; give the file itself (e.g. "
                         f"{Path(path) / 'hwnas-agent-token'}, written by `hwnas-agent token --out FILE`)")
    try:  # O_NONBLOCK: a FIFO opens at once (and is then refused) instead of waiting for a writer forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        fix = (f"create one with `hwnas-agent token --out {path}`" if e.errno == errno.ENOENT
               else "check its permissions and path")
        raise ValueError(f"cannot read the token file {str(path)!r}: {e.strerror or e}; {fix}") from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if not stat.S_ISREG(mode):  # /dev/zero was read until MemoryError, a FIFO waited forever
            raise ValueError(f"the token file {str(path)!r} is {_kind(mode)}, not a regular file; give the file "
                             f"`hwnas-agent token --out FILE` wrote")
        if st.st_size > MAX_TOKEN_FILE:
            raise ValueError(f"the token file {str(path)!r} has {st.st_size:,} bytes; a token file is one line of at "
                             f"most {MAX_TOKEN_FILE:,} bytes (`hwnas-agent token --out FILE` writes one)")
        token = os.read(fd, MAX_TOKEN_FILE + 1).strip()
    except OSError as e:
        raise ValueError(f"cannot read the token file {str(path)!r}: {e.strerror or e}; check its permissions "
                         f"and path") from None
    finally:
        os.close(fd)
    if private and os.name == "posix" and mode & 0o077:
        raise ValueError(f"the token file {str(path)!r} is open to other users (mode {stat.S_IMODE(mode):03o}); "
                         f"make it private: chmod 600 {path}")
    if len(token) < MIN_TOKEN:
        raise ValueError(f"the token in {str(path)!r} has {len(token)} characters; use at least {MIN_TOKEN} "
                         f"(`hwnas-agent token --out {path}` writes a random one)")
    return token


def _kind(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def new_token() -> str:
    return secrets.token_hex(32)


def nonce() -> str:
    return secrets.token_hex(16)


def proof(token: bytes, role: str, mine: str, theirs: str) -> str:
    """What ``role`` ("client" or "server") sends to show it holds ``token``: bound to both nonces."""
    return hmac.new(token, f"{role}|{theirs}|{mine}".encode(), hashlib.sha256).hexdigest()


def check_proof(token: bytes, role: str, mine: str, theirs: str, got: Any) -> bool:
    return isinstance(got, str) and hmac.compare_digest(proof(token, role, theirs, mine), got)


def _recv_exact(sock: socket.socket, n: int, deadline: Optional[float] = None) -> bytes:
    """``n`` bytes; with ``deadline`` (a time.monotonic() value) all of them by then, however they trickle in
    (socket.timeout past it): a per-read timeout alone lets a peer sending one byte at a time stay forever."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("the deadline for this frame passed")
            sock.settimeout(remaining)
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    if payload:
        header = {**header, "payload": len(payload)}
    body = json.dumps(header, separators=(",", ":")).encode()
    if len(body) > MAX_HEADER:
        raise ProtocolError(f"header of {len(body)} bytes exceeds {MAX_HEADER}")
    sock.sendall(MAGIC + struct.pack(">I", len(body)) + body)
    if payload:
        sock.sendall(payload)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"request header holds {text[:20]}, not a finite number (JSON numbers of a request "
                            f"are finite)")
    return value


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"request header holds {name}, not a finite number (strict JSON has no NaN/Infinity)")


def recv(sock: socket.socket, max_payload: int = 0, deadline: Optional[float] = None,
         strict: bool = False) -> Tuple[dict, bytes]:
    """One frame: (header, payload). ProtocolError for anything malformed or over the limits. ``deadline``: the
    whole frame by then (time.monotonic()); ``strict`` (the agent reading requests): NaN, Infinity and numbers
    that overflow to infinity are refused too."""
    head = _recv_exact(sock, 8, deadline)
    if head[:4] != MAGIC:
        raise ProtocolError("not an hwnas-agent frame (wrong magic bytes)")
    (size,) = struct.unpack(">I", head[4:])
    if size > MAX_HEADER:
        raise ProtocolError(f"request header of {size} bytes exceeds the limit of {MAX_HEADER}")
    body = _recv_exact(sock, size, deadline)
    hooks: dict[str, Any] = {"parse_float": _finite, "parse_constant": _no_constant} if strict else {}
    try:
        header = json.loads(body, **hooks)
    except RecursionError:  # a header of 64 KiB may nest 32,000 levels; the decoder recurses once per level
        raise ProtocolError("request header is nested too deeply to be a request") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError; an integer of over 4,300 digits
        raise ProtocolError(f"request header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("request header is not a JSON object")
    n = header.get("payload", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ProtocolError("payload size is not a non-negative integer")
    if n > max_payload:
        raise ProtocolError(f"payload of {n} bytes exceeds the limit of {max_payload} bytes")
    return header, (_recv_exact(sock, n, deadline) if n else b"")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def model_format(data: bytes) -> Optional[str]:
    """"ort" for an ORT-format flatbuffer, "tflite" for a LiteRT one, "openvino" for a packed OpenVINO IR
    (hwnas_agent.openvino_runtime.pack_ir), "onnx" for what looks like an ONNX protobuf, else None.
    A cheap first gate; the runtime loading the file is the real check."""
    if len(data) >= 8 and data[4:8] == b"ORTM":
        return "ort"
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if data[:8] == b"HWNASIR1":
        return "openvino"
    if len(data) >= 2 and data[0] == 0x08:  # field 1 (ir_version), varint: how every ONNX ModelProto starts
        return "onnx"
    return None
