"""`hwnas demo` (hwnas/demo.py): the whole pipeline, at toy settings, and its resume."""
import json

import pytest

from conftest import run_cli
from hwnas.demo import MARKER, DemoError, matching_lut, prepare_out


def test_matching_lut_does_not_pin_this_process():
    """Looking up the shipped LUT must not leave this process pinned (it starved supernet training 40x)."""
    import os

    before = os.sched_getaffinity(0)
    path, notes = matching_lut("ort-cpu")
    assert os.sched_getaffinity(0) == before
    assert path is not None or notes  # either a match, or the reasons there is none


def test_force_deletes_only_a_directory_the_demo_made(tmp_path):
    out = tmp_path / "demo"
    prepare_out(out, force=False)  # a new directory: the demo's from now on
    assert (out / MARKER).is_file()
    (out / "supernet.pt").write_bytes(b"an earlier demo's checkpoint")
    prepare_out(out, force=False)  # run again: resumes, keeps what is there
    assert (out / "supernet.pt").is_file()
    prepare_out(out, force=True)  # start over
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_a_directory_the_demo_did_not_make_is_refused(tmp_path, force):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(DemoError, match=f"did not make \\(no {MARKER} file in it\\).*choose another --out"):
        prepare_out(home, force=force)
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]


def test_demo_force_on_a_foreign_directory_exits_2(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = run_cli("demo", "--out", str(tmp_path), "--force")
    assert r.returncode == 2 and "--force deletes only a directory `hwnas demo` made" in r.stderr, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    args = ("demo", "--out", str(out), "--epochs", "1", "--population", "6", "--generations", "1")
    r = run_cli(*args, timeout=900)
    assert r.returncode in (0, 1), r.stderr[-3000:]  # 1 = measured over the budget (FAIL), still a full bundle
    for step in ("[1/4] LUT", "[2/4] supernet", "[3/4] search", "[4/4] finalize"):
        assert step in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] in ("PASS", "FAIL") and (summary["verdict"] == "PASS") == (r.returncode == 0)
    assert summary["front_size"] >= 1 and summary["measured_ms"] > 0 and summary["peak_rss_mib"] > 0
    assert summary["command"].startswith("hwnas demo")
    for f in ("model.onnx", "model.ort", "report.json", "report.md"):
        assert (out / "final" / f).is_file(), f
    assert (out / MARKER).is_file()
    # run again: nothing is trained or searched twice, and the search gives the same pick
    r2 = run_cli(*args, timeout=900)
    assert r2.returncode == r.returncode, r2.stderr[-3000:]
    assert "already trained" in r2.stdout
    assert json.loads((out / "summary.json").read_text())["pick"] == summary["pick"]
