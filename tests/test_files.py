"""Atomic writes (hwnas.core.files): the old file or the new one, with the mode a plain open() gives."""
import os
import stat

import pytest

from hwnas.core.files import atomic_write, atomic_write_text


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_write_gives_new_files_the_umask_mode(tmp_path, umask, mask, mode):
    umask(mask)
    target = tmp_path / "report.md"
    atomic_write_text(target, "new")
    plain = tmp_path / "plain.md"
    plain.write_text("what open() gives")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == mode


def test_atomic_write_keeps_the_replaced_files_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "lut.json"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize("error", [ValueError("bad content"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_atomic_write_failure_keeps_the_old_file_and_no_temp_file(tmp_path, error):
    target = tmp_path / "front.json"
    atomic_write_text(target, "old")

    def fail_half_way(f):
        f.write(b"half of the new")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, fail_half_way)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["front.json"]
