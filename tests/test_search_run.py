import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from hwnas.search import Constraints, InfeasibleBudgetError, run_search
from hwnas.store import StoreError

from conftest import ROOT


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=8, generations=3, seed=0, progress=False)
    args.update(kw)
    return run_search(lut, out, **args)


def test_search_writes_front_and_is_reproducible(demo_lut_path, tmp_path):
    a = _search(demo_lut_path, tmp_path / "a", constraints=Constraints(budget_ms=1e3))
    b = _search(demo_lut_path, tmp_path / "b", constraints=Constraints(budget_ms=1e3))
    assert a.front and a.best
    assert [r["arch_id"] for r in a.front] == [r["arch_id"] for r in b.front]
    # the front is non-dominated and sorted by latency
    lat = [r["latency_ms"] for r in a.front]
    acc = [r["accuracy"] for r in a.front]
    assert lat == sorted(lat) and acc == sorted(acc)
    for name in ("front.json", "front.csv", "history.json", "best.json", "run.sqlite"):
        assert (tmp_path / "a" / name).is_file()
    made = json.loads((tmp_path / "a" / "front.json").read_text())
    assert made["config"]["seed"] == 0 and made["commands"] and made["versions"]["torch"]
    assert len(a.history) == 3 and all(h["hypervolume"] >= 0 for h in a.history)
    hv = [h["hypervolume"] for h in a.history]
    assert hv == sorted(hv)  # the archive's front can only grow


def test_budget_constraint_is_respected(demo_lut_path, tmp_path):
    from hwnas.lut import LUT
    from hwnas.predict import LatencyPredictor
    from hwnas.predict import covered_resolutions
    from dataclasses import replace

    lut = LUT.load(demo_lut_path)
    space = replace(lut.search_space(), resolutions=covered_resolutions(lut, lut.search_space()))
    predictor = LatencyPredictor(lut, space)
    _, fastest = predictor.fastest()
    # half way up the space's range: 1.3x the fastest left no arch feasible on some quick LUTs
    budget = fastest + (predictor.predict(space.largest()) - fastest) / 2
    r = _search(demo_lut_path, tmp_path / "r", constraints=Constraints(budget_ms=budget), generations=4)
    assert r.front and all(x["latency_ms"] <= budget for x in r.front)


def test_infeasible_budget_stops_before_searching(demo_lut_path, tmp_path):
    with pytest.raises(InfeasibleBudgetError, match=r"below the fastest architecture this space allows: [\d.]+ ms"):
        _search(demo_lut_path, tmp_path / "x", constraints=Constraints(budget_ms=1e-6))
    assert not (tmp_path / "x").exists()


def test_existing_run_needs_resume_and_same_settings(demo_lut_path, tmp_path):
    _search(demo_lut_path, tmp_path / "r", generations=1)
    with pytest.raises(StoreError, match="already holds a run; add --resume"):
        _search(demo_lut_path, tmp_path / "r", generations=1)
    with pytest.raises(StoreError, match="seed differ"):
        _search(demo_lut_path, tmp_path / "r", generations=2, seed=5, resume=True)
    with pytest.raises(StoreError, match="no run to resume"):
        _search(demo_lut_path, tmp_path / "none", resume=True)


def test_resume_in_process_equals_uninterrupted(demo_lut_path, tmp_path):
    full = _search(demo_lut_path, tmp_path / "full", generations=4, strategy="evolution")
    _search(demo_lut_path, tmp_path / "part", generations=2, strategy="evolution")
    resumed = _search(demo_lut_path, tmp_path / "part", generations=4, strategy="evolution", resume=True)
    assert resumed.resumed_from == 2
    assert [r["arch_id"] for r in resumed.front] == [r["arch_id"] for r in full.front]


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_front(demo_lut_path, tmp_path):
    common = ["--lut", str(demo_lut_path), "--evaluator", "proxy:synflow", "--population", "10",
              "--generations", "30", "--seed", "1"]
    ref = subprocess.run([sys.executable, "-m", "hwnas.cli", "search", *common, "--out", str(tmp_path / "ref")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert ref.returncode in (0, 1), ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli", "search", *common, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline, gens = time.time() + 300, 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(out / "run.sqlite") as db:
                gens = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        except sqlite3.Error:
            continue
        if gens >= 3:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= gens < 30, "the run should have been killed part-way"
    done = subprocess.run([sys.executable, "-m", "hwnas.cli", "search", *common, "--out", str(out), "--resume"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    assert "resumed at generation" in done.stdout
    ref_front = json.loads((tmp_path / "ref" / "front.json").read_text())["front"]
    got_front = json.loads((out / "front.json").read_text())["front"]
    assert [r["arch_id"] for r in got_front] == [r["arch_id"] for r in ref_front]


def test_incremental_front_equals_front_of_whole_archive(demo_lut_path, tmp_path):
    import sqlite3 as _sq

    from hwnas.lut import LUT
    from hwnas.search.problem import Problem
    from hwnas.search.run import pareto_front

    r = _search(demo_lut_path, tmp_path / "r", generations=5, constraints=Constraints(budget_ms=1e3))
    with _sq.connect(tmp_path / "r" / "run.sqlite") as db:
        rows = db.execute("SELECT arch_id, accuracy, latency_ms, params_m, memory_mb, layers FROM evals").fetchall()
    records = [dict(zip(("arch_id", "accuracy", "latency_ms", "params_m", "memory_mb", "layers"), x)) for x in rows]
    problem = Problem(None, None, Constraints(budget_ms=1e3))
    assert [f["arch_id"] for f in pareto_front(records, problem)] == [f["arch_id"] for f in r.front]
    assert LUT.load(demo_lut_path)  # untouched
