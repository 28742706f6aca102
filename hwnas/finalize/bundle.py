"""The bundle directory: refuse what is not ours, build beside it, publish with one rename."""
from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from hwnas.finalize.source import FinalizeError
from hwnas.core.files import current_umask, fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: stale staging directories are not recognised
    fcntl = None  # type: ignore[assignment]

REPORT_FORMAT = "hwnas-finalize-report"
OWNER = ".owner"  # in a staging directory: flock-ed by the finalize building it, for its whole life


def is_bundle(path: Path) -> bool:
    """A directory ``hwnas finalize`` made (its report.json says so)."""
    try:
        return json.loads((path / "report.json").read_text()).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: Path, force: bool) -> None:
    """Refuse before any work. --force replaces a bundle as a whole, so it must be one: anything
    else in --out is the user's, not ours to delete."""
    if out.exists() and not out.is_dir():
        raise FinalizeError(f"--out {out} is a file; a bundle is a directory: choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise FinalizeError(f"{out} already holds files; choose another --out, or add --force to replace the bundle")
    if not is_bundle(out):
        raise FinalizeError(f"{out} holds files but no finalize bundle (no hwnas report.json); --force replaces "
                            f"only a bundle made by `hwnas finalize`: choose another --out, or empty it yourself")


@contextmanager
def staging_dir(out: Path, log: Callable[[str], Any] = print) -> Iterator[Path]:
    """A new directory beside ``out`` (same file system, so publishing is a rename), with the mode a
    plain mkdir would give; removed unless :func:`publish` moved it into place.

    The finalize building it holds an exclusive ``flock`` on its ``.owner`` file (dropped by the OS however
    the process ends): staging directories beside ``out`` whose lock is free were left by a finalize that was
    killed (kill -9 skips the removal), and are removed first, saying so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_stages(out):
        log(f"removed a stale staging directory {stale} (left by a finalize that no longer runs)")
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    fd = None
    try:
        stage.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        fd = os.open(stage / f"{OWNER}.new", os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.replace(stage / f"{OWNER}.new", stage / OWNER)  # named only once locked: no one sees it free
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def remove_stale_stages(out: Path) -> list[Path]:
    """Remove the ``.NAME.*.partial`` directories beside ``out`` that are provably dead: their ``.owner`` lock
    can be taken, so no process holds it. One without an ``.owner`` file (an older hwnas made it, or it is
    being created or published this instant) cannot be proven dead and is left alone."""
    if fcntl is None:
        return []
    removed = []
    for stage in sorted(out.parent.glob(f".{glob.escape(out.name)}.*.partial")):
        try:
            fd = os.open(stage / OWNER, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a finalize is building it now
            os.close(fd)
            continue
        try:
            shutil.rmtree(stage)
            removed.append(stage)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def publish(stage: Path, out: Path) -> None:
    """Put the finished bundle at ``out`` with one rename. An old bundle is renamed aside first and deleted
    only once the new one is in place; if the second rename fails, the old one is put back."""
    try:
        (stage / OWNER).unlink()  # the lock stays held through the open descriptor until staging_dir closes it
    except FileNotFoundError:
        pass
    for f in stage.iterdir():
        _fsync_file(f)
    fsync_dir(stage)
    old = None
    if out.exists() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old)  # onto the empty directory mkdtemp made
    try:
        os.replace(stage, out)  # onto nothing, or an empty directory
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def bundle_files(folder: Path) -> list[str]:
    """The bundle's files, as its report lists them."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
