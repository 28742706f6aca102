"""A list of architectures from one file: what ``hwnas score`` and ``hwnas predict --archs`` read.

Three forms, told apart by the file's first character: a JSON list of arch objects (``[{...}, ...]``), JSON
Lines (one arch object a line, as ``hwnas sample --n N --out`` writes), or plain text with one arch a line in
its kind's text form (a cell space reads NAS-Bench-201 strings, ``|nor_conv_3x3~0|+|...``; ``#`` starts a
comment). Every arch is checked against the space, and a bad one is named by its position.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.core import jsonio
from hwnas.spaces.base import ArchError

MAX_ARCHS = 1_000_000  # a list longer than this is a mistake (a wrong file), not a workload


def read_arch_list(space: Any, path: str | Path) -> list[Any]:
    """The archs listed in ``path``, in order, each validated against ``space``."""
    path = Path(path)
    text = jsonio.read_text(path, ArchError, "architecture list")
    start = text.lstrip()[:1]
    if start == "[":
        data = jsonio.loads_file(path, ArchError, "architecture list")
        if len(data) > MAX_ARCHS:
            raise ArchError(f"{path}: {len(data)} archs; at most {MAX_ARCHS:,} in one list")
        archs = [space.arch_from_dict(d, source=f"{path} item {i}") for i, d in enumerate(data)]
    elif start == "{":
        archs = [space.arch_from_dict(d, source=where)
                 for where, d in jsonio.loads_records(path, ArchError, "architecture list")]
    else:
        from_text = getattr(space, "arch_from_text", None)
        lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#")]
        if lines and from_text is None:
            raise ArchError(f"{path}: not JSON, and a space of kind {space.kind!r} has no text form for archs; give a "
                            f"JSON list of arch objects (as `hwnas sample --out` writes them)")
        if len(lines) > MAX_ARCHS:
            raise ArchError(f"{path}: {len(lines)} archs; at most {MAX_ARCHS:,} in one list")
        archs = [from_text(line, source=f"{path} line {n}") for n, line in lines]
    if not archs:
        raise ArchError(f"{path}: lists no architecture; give a JSON list of arch objects"
                        + (" or one NAS-Bench-201 string a line" if hasattr(space, "arch_from_text") else ""))
    return archs
