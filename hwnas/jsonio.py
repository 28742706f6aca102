"""Strict JSON out: every file hwnas writes parses anywhere (no NaN/Infinity, which JSON does not have).

A non-finite number in an output is a bug upstream; the error names where it is
(``front[3].accuracy``) instead of writing a file other tools reject.
"""
from __future__ import annotations

import json
import math
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
