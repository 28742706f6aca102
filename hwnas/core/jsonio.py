"""Strict JSON out: every file hwnas writes parses anywhere (no NaN/Infinity, which JSON does not have).

A non-finite number in an output is a bug upstream; the error names where it is
(``front[3].accuracy``) instead of writing a file other tools reject.
"""
from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any


class NonFiniteError(ValueError):
    """A value to be written as JSON is NaN or infinite."""


def _where_not_finite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "(top level)"
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _where_not_finite(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _where_not_finite(v, f"{path}[{i}]")
            if found:
                return found
    return None


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``; a non-finite value raises NonFiniteError naming its field."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as e:
        where = _where_not_finite(obj)
        if where is None:
            raise
        raise NonFiniteError(f"refusing to write a non-finite number (NaN/Infinity) at {where}: "
                             f"strict JSON has none; this is a bug upstream, please report it") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (strict JSON has no NaN/Infinity)")


class DuplicateKeyError(ValueError):
    """One JSON object names a key twice: ``json`` would keep the last silently."""

    def __init__(self, key: str):
        super().__init__(f"key {key!r} appears twice in one object (only the last would count, silently): "
                         f"give it once")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses a key given twice in one object, naming it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def special_file(path: str | Path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a directory ("a character device" such
    as /dev/zero, "a named pipe (FIFO)", "a socket", "a block device"), else None. Nothing is opened."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def path_problem(path: str | Path, what: str, form: str = "a file") -> str | None:
    """Why ``path`` cannot be read as ``what`` where "does not exist" would mislead (and advise making a file
    there): a directory, a symbolic link that loops, or one that points nowhere. None: a file, or nothing."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a directory; expected {what} ({form})"
    kind = special_file(path)
    if kind:  # /dev/zero read until memory ran out, a FIFO blocked forever; both were said to "not exist"
        return f"{path} is {kind}, not a regular file; expected {what} ({form})"
    if os.path.islink(path) and not path.exists():
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"{path} is a symbolic link that loops (it points back at itself); expected {what}"
            return f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist; expected {what}"
    return None


def loads_file(path: str | Path, error: type[Exception], what: str) -> Any:
    """Read a JSON file strictly; every way it can be unreadable becomes ``error`` naming the file.

    Missing or a directory, not UTF-8, nested too deep, NaN/Infinity, a key twice in one object, or not
    JSON: the message says which, where, and that the file is ``what`` ("an architecture file", "a LUT").
    """
    path = Path(path)
    return _parse(read_text(path, error, what), str(path), error, what)


def loads_records(path: str | Path, error: type[Exception], what: str) -> list[tuple[str, Any]]:
    """One JSON value, or JSON Lines (one value a line, as ``hwnas sample --n N --out`` writes), as strictly as
    :func:`loads_file`: ``(where, value)`` for each, ``where`` naming the file (and the line)."""
    path = Path(path)
    text = read_text(path, error, what)
    try:
        return [(str(path), json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys))]
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            return [(str(path), _parse(text, str(path), error, what))]  # raises, as loads_file would
    except (ValueError, RecursionError):
        return [(str(path), _parse(text, str(path), error, what))]
    return [(f"{path} line {n}", _parse(line, f"{path} line {n}", error, what))
            for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_text(path: Path, error: type[Exception], what: str) -> str:
    problem = path_problem(path, what, "a JSON file")
    if problem:
        raise error(problem)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}); expected {what} (a JSON file)") from None


def _parse(text: str, where: str, error: type[Exception], what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys)
    except DuplicateKeyError as e:
        raise error(f"{where}: {e}") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to be {what}") from None
    except json.JSONDecodeError as e:
        stripped = text.rstrip()
        closer = {"{": "}", "[": "]"}.get(stripped[:1])
        hint = " (the file ends early: truncated?)" if closer and not stripped.endswith(closer) else ""
        raise error(f"{where}: not valid JSON{hint}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # a NaN/Infinity constant
        raise error(f"{where}: {e}") from None
