"""One grammar for a duration the user types (``hwnas search --wall-time``, ``hwnas profile --device-time``):
plain seconds (``90``, ``1.5``) or numbers with units (``90s``, ``5m``, ``2h``, ``1.5d``, combined ``1h30m``)."""
from __future__ import annotations

import math
import re

from hwnas.core.errors import InputError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


class DurationError(InputError):
    """Not a duration, or not a positive one; the message shows both forms."""


def parse_duration(text: str) -> float:
    """``text`` in seconds (> 0): plain seconds, or number-unit pairs in s, m, h, d (``1h30m``)."""
    t = str(text).strip().lower()
    try:
        seconds = float(t)
    except ValueError:
        parts = _PART.findall(t)
        if not parts or _PART.sub("", t).strip():
            raise DurationError(f"expected a duration such as 90 (seconds), 90s, 30m, 2h or 1h30m, "
                                f"got {text!r}") from None
        seconds = sum(float(n) * UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise DurationError(f"expected a duration > 0, got {text!r}")
    return seconds
