"""The environment refusing (issue 28 item 8) is one line naming the file and the fix, exit 2, from one errno ->
message mapping at the CLI boundary (hwnas.core.errors.describe_os_error), not an internal error: permission denied
(with root's capabilities dropped), a read-only --out, a symbolic-link loop, ENOSPC in finalize and report
(on a real full tmpfs; the old bundle stays whole)."""
import errno
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, cli_here
from fullfs import small_disk
from hwnas.core.errors import OS_ERRORS, describe_os_error
from nocaps import run_cli_without_caps

LUT = str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json")
ARCH = {"space": "demo", "resolution": 24, "width": 1.0, "kernels": [[3], [3], [3], [3]],
        "expands": [[2], [2], [2], [2]]}


def _one_error_line(r, *says):
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("note:", "WARNING"))]
    assert r.returncode == 2 and len(err) == 1 and "internal error" not in err[0], r.stderr
    for s in says:
        assert s in err[0], (s, err[0])
    return err[0]


def test_every_mapped_errno_names_the_file():
    for code in OS_ERRORS:
        said = describe_os_error(OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "/some/file"))
        assert "/some/file" in said and said.endswith(said.rstrip()) and "\n" not in said, code
    assert describe_os_error(OSError(errno.EBADF, "Bad file descriptor", "x")) is None  # a bug: exit 4


def test_unreadable_inputs_and_an_unwritable_out(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH))
    arch.chmod(0o000)
    _one_error_line(run_cli_without_caps("predict", "--lut", LUT, "--arch", str(arch)), f"permission denied: {arch}")
    lut = tmp_path / "lut.json"
    shutil.copy(LUT, lut)
    lut.chmod(0o000)
    _one_error_line(run_cli_without_caps("predict", "--lut", str(lut), "--sample", "1"), f"permission denied: {lut}")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    _one_error_line(run_cli_without_caps("sample", "--space", "demo", "--out", str(locked / "a.json")),
                    "permission denied", str(locked))
    _one_error_line(run_cli_without_caps("search", "--lut", LUT, "--population", "4", "--generations", "1",
                                         "--out", str(locked / "run")), "permission denied", str(locked))
    assert list(locked.iterdir()) == []
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.sqlite").write_bytes(b"SQLite format 3\0")
    (run / "run.sqlite").chmod(0o000)
    _one_error_line(run_cli_without_caps("report", str(run)), f"permission denied: {run / 'run.sqlite'}")


def test_a_symlink_loop_and_proc_as_out(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for argv in (("sample", "--space", "demo", "--out", str(loop)),
                 ("search", "--lut", LUT, "--out", str(loop)),
                 ("finalize", str(tmp_path), "--out", str(loop))):
        _one_error_line(cli_here(*argv), f"{loop} is a symbolic link that loops")
    _one_error_line(cli_here("search", "--lut", LUT, "--population", "4", "--generations", "1", "--out", "/proc/x"),
                    "/proc/x: no such file or directory (or it cannot be created there)")


def test_a_read_only_out(tmp_path):
    (tmp_path / "ro").mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(tmp_path / "ro")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.strip()}")
    try:
        ro = tmp_path / "ro"
        _one_error_line(cli_here("sample", "--space", "demo", "--out", str(ro / "a.json")),
                        "is on a read-only file system; give an --out on a writable one")
        _one_error_line(cli_here("search", "--lut", LUT, "--population", "4", "--generations", "1",
                                 "--out", str(ro / "run")), "read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "ro")], check=False)


def _tree(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.slow
def test_finalize_and_report_on_a_full_disk_keep_the_old_bundle(tiny_run, tmp_path):
    with small_disk(tmp_path / "disk", "8m") as resize:
        out = tmp_path / "disk" / "dist"
        first = cli_here("finalize", str(tiny_run), "--out", str(out), "--processes", "0")
        assert first.returncode in (0, 1), first.stderr
        before = _tree(out)
        used = sum(len(v) for v in before.values())
        resize(f"{used // 1024 + 24}k")  # room for a few small files, not for a second bundle
        r = cli_here("finalize", str(tiny_run), "--out", str(out), "--processes", "0", "--force")
        _one_error_line(r, "no space left on the device holding")
        assert _tree(out) == before and sorted(p.name for p in out.parent.iterdir()) == ["dist"]
        # report rewrites report.md atomically: on a disk with no room at all the old one is kept
        fd = os.open(out.parent / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)
        r = cli_here("report", str(out))
        _one_error_line(r, "no space left on the device holding")
        assert _tree(out) == before
