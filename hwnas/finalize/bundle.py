"""The bundle directory: refuse what is not ours, build beside it, publish with one rename."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hwnas.finalize.source import FinalizeError
from hwnas.lut import current_umask, fsync_dir

REPORT_FORMAT = "hwnas-finalize-report"


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
def staging_dir(out: Path) -> Iterator[Path]:
    """A new directory beside ``out`` (same file system, so publishing is a rename), with the mode a
    plain mkdir would give; removed unless :func:`publish` moved it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        stage.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path) -> None:
    """Put the finished bundle at ``out`` with one rename. An old bundle is renamed aside first and deleted
    only once the new one is in place; if the second rename fails, the old one is put back."""
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
