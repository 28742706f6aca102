"""A damaged run.sqlite (issue 28 item 2): found by PRAGMA quick_check whenever the store is opened, refused
by readers (never a partial run with exit 0), and one way out that works: --resume --salvage copies what is
readable into a new run.sqlite, which resumes to the run's own front."""
import json
import shutil
import sqlite3

import pytest

from hwnas.finalize import FinalizeError, finalize
from hwnas.search import run_search
from hwnas.search.store import DamagedStoreError, RunStore, StoreError

from conftest import cli_here

ARGS = dict(evaluator="proxy:synflow", population=8, generations=3, seed=0, progress=False)


@pytest.fixture(scope="module")
def reference(demo_lut_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_search(demo_lut_path, out, **ARGS)
    return out


def _page_of(db_path, name):
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]


def _damaged(reference, tmp_path, page):
    """A copy of the finished run with one 4 KB page overwritten (``page`` 1 is the file's header)."""
    out = tmp_path / f"damaged-{page}"
    shutil.copytree(reference, out)
    db = out / "run.sqlite"
    size = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * size)
    return out


def _front(run_dir):
    return json.loads((run_dir / "front.json").read_text())["front"]


def test_readers_refuse_a_store_damaged_where_they_do_not_read(reference, tmp_path):
    """The evals index is not what report reads: before the check, report exited 0 on this store."""
    out = _damaged(reference, tmp_path, _page_of(reference / "run.sqlite", "sqlite_autoindex_evals_1"))
    r = cli_here("report", str(out))
    assert r.returncode == 2 and "the run store is damaged" in r.stderr and "--resume --salvage" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1 and not (out / "report.md").exists()
    with pytest.raises(FinalizeError, match="the run store is damaged .* may be partial"):
        finalize(out, tmp_path / "dist", processes=0, log=lambda s: None)
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("what", ["header", "evals", "evals index", "generations"])
def test_salvage_is_the_way_out_and_gives_the_same_front(demo_lut_path, reference, tmp_path, what, capsys):
    page = 1 if what == "header" else _page_of(reference / "run.sqlite", {
        "evals": "evals", "evals index": "sqlite_autoindex_evals_1", "generations": "generations"}[what])
    out = _damaged(reference, tmp_path, page)
    with pytest.raises(StoreError, match=r"store is damaged .*--resume --salvage"):
        run_search(demo_lut_path, out, **ARGS)
    with pytest.raises(DamagedStoreError, match=r"run\.sqlite: the run store is damaged .*--resume --salvage: it "
                                                r"keeps the damaged file as run\.sqlite\.damaged"):
        run_search(demo_lut_path, out, resume=True, **ARGS)
    capsys.readouterr()
    r = run_search(demo_lut_path, out, resume=True, salvage=True, **ARGS)
    assert "was damaged" in capsys.readouterr().err
    assert (out / "run.sqlite.damaged").is_file()
    assert [x.to_dict() for x in r.front] == _front(reference) == _front(out)
    assert cli_here("report", str(out)).returncode == 0
    store = RunStore(out / "run.sqlite", readonly=True)
    assert store.get_meta("salvaged")[0]["damaged"] == str(out / "run.sqlite.damaged")
    store.close()


def test_salvage_of_an_intact_store_resumes_it(demo_lut_path, reference, tmp_path, capsys):
    out = tmp_path / "intact"
    shutil.copytree(reference, out)
    r = run_search(demo_lut_path, out, salvage=True, **{**ARGS, "generations": 4})
    assert "is intact; nothing to salvage" in capsys.readouterr().err
    assert r.resumed_from == 3 and not (out / "run.sqlite.damaged").exists()


def test_the_command_says_the_way_out(demo_lut_path, reference, tmp_path):
    out = _damaged(reference, tmp_path, _page_of(reference / "run.sqlite", "evals"))
    common = ["search", "--lut", str(demo_lut_path), "--evaluator", ARGS["evaluator"], "--population", "8",
              "--generations", "3", "--out", str(out)]
    r = cli_here(*common, "--resume")
    assert r.returncode == 2 and "internal error" not in r.stderr and "--resume --salvage" in r.stderr, r.stderr
    ok = cli_here(*common, "--resume", "--salvage")
    assert ok.returncode in (0, 1) and "search done" in ok.stdout, ok.stderr
    assert _front(out) == _front(reference)
