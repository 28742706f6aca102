"""A run records its LUT's content (issue 28 item 1): a LUT rewritten under a run is refused by a resume, and
finalize and report say so; a LUT of another space is refused by finalize before any export."""
import json
import shutil

import pytest

from hwnas.finalize import FinalizeError, finalize
from hwnas.latency.lut import LUT, content_digest, content_table
from hwnas.search import run_search
from hwnas.search.store import RunStore, StoreError

from conftest import ROOT, cli_here


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=8, generations=2, seed=0, progress=False)
    args.update(kw)
    return run_search(lut, out, **args)


def _scale(lut_path, factor):
    data = json.loads(lut_path.read_text())
    for e in data["entries"].values():
        for k in ("median_ms", "p10_ms", "p90_ms"):
            e[k] *= factor
    lut_path.write_text(json.dumps(data))


def _dump(run_dir):
    import sqlite3

    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return list(db.iterdump())


def test_resume_refuses_a_changed_lut_and_resumes_with_the_original(demo_lut_path, tmp_path):
    lut = tmp_path / "lut.json"
    shutil.copy(demo_lut_path, lut)
    full = _search(lut, tmp_path / "full", generations=3)
    out = tmp_path / "r"
    _search(lut, out, generations=1)
    config = json.loads((out / "front.json").read_text())["config"]
    assert config["lut_digest"] == content_digest(content_table(LUT.load(lut)))
    original = lut.read_bytes()
    _scale(lut, 1.1)
    before = _dump(out)
    n = len(LUT.load(lut).entries)
    with pytest.raises(StoreError, match=rf"the LUT {lut} is not the one this run began with: {n} of {n} entries "
                                         rf"differ .*content digest {config['lut_digest']} then.*Put the original LUT "
                                         rf"back at {lut} and run the same command"):
        _search(lut, out, generations=3, resume=True)
    assert _dump(out) == before  # refused before anything was written (the complete marker kept)
    r = cli_here("search", "--lut", str(lut), "--population", "8", "--generations", "3", "--out", str(out),
                 "--resume")
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert r.returncode == 2 and len(err) == 1 and "entries differ" in err[0], r.stderr
    lut.write_bytes(original)
    resumed = _search(lut, out, generations=3, resume=True)
    assert resumed.resumed_from == 1
    assert [x.to_dict() for x in resumed.front] == [x.to_dict() for x in full.front]


def test_a_lut_rewritten_with_the_same_numbers_keeps_its_digest(demo_lut_path, tmp_path):
    lut = LUT.load(demo_lut_path)
    lut.command = "another command"
    lut.save(tmp_path / "same.json")
    assert content_digest(content_table(LUT.load(tmp_path / "same.json"))) == content_digest(content_table(lut))


def test_a_run_from_before_the_digest_still_resumes_with_a_note(demo_lut_path, tmp_path, capsys):
    out = tmp_path / "old"
    _search(demo_lut_path, out, generations=1)
    store = RunStore(out / "run.sqlite")
    store.set_meta("config", {k: v for k, v in store.get_meta("config").items() if k != "lut_digest"})
    store.db.execute("DELETE FROM meta WHERE key='lut_table'")
    store.db.commit()
    store.close()
    capsys.readouterr()
    assert _search(demo_lut_path, out, generations=2, resume=True).resumed_from == 1
    assert "was made before runs recorded their LUT's digest" in capsys.readouterr().err


@pytest.fixture(scope="module")
def changed_lut(demo_lut_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("changed") / "lut-x3.json"
    shutil.copy(demo_lut_path, path)
    _scale(path, 3.0)
    return path


def test_finalize_refuses_a_changed_lut_before_any_export(tiny_run, changed_lut, tmp_path):
    said = []
    with pytest.raises(FinalizeError, match=r"is not the one run .* was searched with: \d+ of \d+ entries differ.*"
                                            r"the search predicted .* this LUT .*--accept-lut-change"):
        finalize(tiny_run, tmp_path / "dist", lut=changed_lut, processes=0, log=said.append)
    assert said == [] and not (tmp_path / "dist").exists()


def test_finalize_with_accept_lut_change_goes_on_and_the_report_says_so(tiny_run, changed_lut, tmp_path, capsys):
    said = []
    out = tmp_path / "dist"
    r = finalize(tiny_run, out, lut=changed_lut, processes=0, log=said.append, accept_lut_change=True)
    assert any(s.startswith("WARNING: the LUT") and "--accept-lut-change" in s for s in said), said
    assert r.report["lut"]["matches_run"] is False and r.report["lut"]["digest"] != r.report["lut"]["run_digest"]
    assert "not the one the run was searched with" in (out / "report.md").read_text()
    # the LUT changes again after finalize: report warns on stderr
    _scale(changed_lut, 2.0)
    rr = cli_here("report", str(out))
    assert rr.returncode == 0 and "WARNING: the LUT" in rr.stderr and "changed since" in rr.stderr, rr.stderr


def test_an_unchanged_lut_is_recorded_as_matching(tiny_run, tmp_path):
    from hwnas.finalize import pick_record, read_run
    from hwnas.finalize.source import check_lut_for_run, resolve_lut

    run = read_run(tiny_run)
    rec = pick_record(run)
    info = check_lut_for_run(run, resolve_lut(run, None), rec, run.space.arch_from_dict(rec.arch))
    assert info["matches_run"] is True and info["digest"] == run.config["lut_digest"]


def test_finalize_refuses_a_lut_of_another_space_first(tiny_run, tmp_path):
    said = []
    with pytest.raises(FinalizeError, match=r"has no entry for \d+ of the \d+ blocks of arch \w+: it was built for "
                                            r"space 'cell-demo' \(kind cell\), the run searched 'demo' \(kind mbv3\); "
                                            r"give the LUT the run was searched with"):
        finalize(tiny_run, tmp_path / "dist", lut=ROOT / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json", processes=0,
                 log=said.append)
    assert said == [] and not (tmp_path / "dist").exists()


def test_report_of_a_run_warns_when_its_lut_changed(demo_lut_path, tmp_path):
    lut = tmp_path / "lut.json"
    shutil.copy(demo_lut_path, lut)
    out = tmp_path / "r"
    _search(lut, out, generations=1)
    ok = cli_here("report", str(out))
    assert ok.returncode == 0 and "WARNING" not in ok.stderr, ok.stderr
    _scale(lut, 1.5)
    r = cli_here("report", str(out))
    assert r.returncode == 0 and "WARNING: the LUT" in r.stderr and "entries differ" in r.stderr, r.stderr
    assert "WARNING: the LUT" in (out / "report.md").read_text()
