"""The kinds of failure a user can act on, so every command ends with an exit code scripts can trust.

``InputError``: what the user gave is wrong (a file, a flag, an architecture, a LUT): exit 2, one line
that says what and what to do. Each module derives its own (``LUTError``, ``ArchError``, ``DataError``…)
and raises it where the bad input is detected. ``CheckFailed``: the input was fine but a check did not
pass (a verdict, parity): exit 1. Anything else escaping a command is a bug in hwnas: exit 4, with
the traceback written to a file (``hwnas.cli``).
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input; the message names the file/field and the fix."""


class CheckFailed(RuntimeError):
    """A check on good input failed (e.g. ONNX parity)."""


class SearchError(InputError):
    """A search's configuration is wrong (strategy, population, objectives, workers)."""
