"""A real full disk for tests: a small tmpfs mounted at a path (tests run as root; skipped with the reason where
mounting is not allowed). ``resize(new)`` frees space, as a user deleting files would."""
import contextlib
import subprocess

import pytest


@contextlib.contextmanager
def small_disk(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here (needs root with CAP_SYS_ADMIN): "
                    f"{r.stderr.strip() or r.returncode}")

    def resize(new):
        subprocess.run(["mount", "-o", f"remount,size={new}", str(path)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder, name="old"):
    """A small file that fills a 4 KB tmpfs: ``folder`` then has no room for one more byte of a new file."""
    p = folder / name
    p.write_bytes(b"the old contents\n")
    return p
