"""Writing files so that a reader, a resume after kill -9 or a power cut sees the old file or the new one, never
half of one: every LUT, run record, report, checkpoint and bundle hwnas writes goes through here."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write(f)`` into a temp file in the same folder, fsync, then rename over the target: a reader (or
    a resume after kill -9) sees the old file or the new one, never half of one.

    The file gets the mode a plain ``open()`` would give it (``mkstemp`` alone makes every file 0600),
    the temp file is removed on any failure (Ctrl-C included), and the folder is fsynced after the
    rename so the new name itself survives a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _target_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` as UTF-8, atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode()))


def _target_mode(path: Path) -> int:
    """The replaced file's permission bits, or for a new file what the umask allows (0o666 & ~umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` alone must set it
    to read it, which races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(fd)


def refuse_overwriting_inputs(out: str | Path, out_flag: str, inputs: dict[str, Any]) -> None:
    """An InputError when the output ``out`` (given as ``out_flag``) is one of the command's input files
    (``inputs``: flag -> path or None): writing it would replace what the user gave, e.g. ``hwnas score --json``
    over its ``--archs`` list. Links and relative paths count as the file they reach."""
    from hwnas.core.errors import InputError

    target = Path(out)
    for flag, given in inputs.items():
        if given is None:
            continue
        try:
            same = target.exists() and os.path.samefile(target, given)
        except OSError:  # an input that is not there is said by whoever reads it
            same = False
        if same:
            raise InputError(f"{out_flag} {out} is the {flag} file itself: writing it would replace your input; "
                             f"give {out_flag} another path")
