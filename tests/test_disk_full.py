"""A disk that fills up under a search (issue 28 item 3), on a real full disk: a small tmpfs the test mounts
(tests run as root; skipped, with the reason, where mounting is not allowed). A creation that failed leaves
nothing behind, so the same command works once space is freed; a search stopped mid-way keeps what it saved
and says to free space and add --resume, which gives the front an uninterrupted run gives."""
import json

import pytest

from conftest import ROOT, cli_here
from fullfs import small_disk

LUT = str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json")


def _search(out, generations, *extra):
    return cli_here("search", "--lut", LUT, "--population", "8", "--generations", str(generations), "--seed", "3",
                    "--out", str(out), *extra)


def _front(out):
    return json.loads((out / "front.json").read_text())["front"]


def test_a_store_the_full_disk_could_not_create_leaves_nothing_and_the_same_command_works(tmp_path):
    ref = _search(tmp_path / "ref", 2)
    assert ref.returncode in (0, 1), ref.stderr
    with small_disk(tmp_path / "disk", "48k") as resize:
        out = tmp_path / "disk" / "r"
        r = _search(out, 2)
        assert r.returncode == 2 and "internal error" not in r.stderr, r.stderr
        assert "nothing was kept: free space, then run the same command" in r.stderr, r.stderr
        assert not out.exists()  # no run.lock, no 4 KB run.sqlite: nothing the same command would refuse
        resize("4m")
        again = _search(out, 2)
        assert again.returncode in (0, 1), again.stderr
        assert _front(out) == _front(tmp_path / "ref")


@pytest.mark.slow
def test_a_disk_full_mid_search_keeps_the_run_and_resume_gives_the_same_front(tmp_path):
    generations = 12
    ref = _search(tmp_path / "ref", generations)
    assert ref.returncode in (0, 1), ref.stderr
    with small_disk(tmp_path / "disk", "200k") as resize:
        out = tmp_path / "disk" / "r"
        r = _search(out, generations)
        assert r.returncode == 2 and "internal error" not in r.stderr, r.stderr
        assert ("what was saved is kept: free space, then run the same command with --resume (it continues to the "
                "same front)") in r.stderr, r.stderr
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("hwnas ")]
        assert len(err) == 1 and "database or disk is full" in err[0], r.stderr
        assert (out / "run.sqlite").is_file()
        refused = _search(out, generations)  # without --resume: the run is there, and says so
        assert refused.returncode == 2 and "add --resume" in refused.stderr, refused.stderr
        resize("16m")
        done = _search(out, generations, "--resume")
        assert done.returncode in (0, 1), done.stderr
        assert _front(out) == _front(tmp_path / "ref")
