import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from hwnas.search import Constraints, InfeasibleBudgetError, run_search
from hwnas.search.store import DiskFullError, RunStore, StoreError

from conftest import ROOT, run_cli


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=8, generations=3, seed=0, progress=False)
    args.update(kw)
    return run_search(lut, out, **args)


def test_search_writes_front_and_is_reproducible(demo_lut_path, tmp_path):
    a = _search(demo_lut_path, tmp_path / "a", constraints=Constraints(budget_ms=1e3))
    b = _search(demo_lut_path, tmp_path / "b", constraints=Constraints(budget_ms=1e3))
    assert a.front and a.best
    assert [r.arch_id for r in a.front] == [r.arch_id for r in b.front]
    # the front is non-dominated and sorted by latency
    lat = [r.latency_ms for r in a.front]
    acc = [r.accuracy for r in a.front]
    assert lat == sorted(lat) and acc == sorted(acc)
    for name in ("front.json", "front.csv", "history.json", "best.json", "run.sqlite"):
        assert (tmp_path / "a" / name).is_file()
    made = json.loads((tmp_path / "a" / "front.json").read_text())
    assert made["config"]["seed"] == 0 and made["commands"] and made["versions"]["torch"]
    assert len(a.history) == 3 and all(h["hypervolume"] >= 0 for h in a.history)
    hv = [h["hypervolume"] for h in a.history]
    assert hv == sorted(hv)  # the archive's front can only grow


def test_budget_constraint_is_respected(demo_lut_path, tmp_path):
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import MBv3LatencyPredictor
    from hwnas.latency.predict import covered_resolutions
    from dataclasses import replace

    lut = LUT.load(demo_lut_path)
    space = replace(lut.search_space(), resolutions=covered_resolutions(lut, lut.search_space()))
    predictor = MBv3LatencyPredictor(lut, space)
    _, fastest = predictor.fastest()
    # half way up the space's range: 1.3x the fastest left no arch feasible on some quick LUTs
    budget = fastest + (predictor.predict(space.largest()) - fastest) / 2
    r = _search(demo_lut_path, tmp_path / "r", constraints=Constraints(budget_ms=budget), generations=4)
    assert r.front and all(x.latency_ms <= budget for x in r.front)


def test_infeasible_budget_stops_before_searching(demo_lut_path, tmp_path):
    with pytest.raises(InfeasibleBudgetError, match=r"below the fastest architecture this space allows: [\d.]+ ms"):
        _search(demo_lut_path, tmp_path / "x", constraints=Constraints(budget_ms=1e-6))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad, error", [
    (dict(population=1), "population must be an integer >= 2"),
    (dict(generations=0), "generations must be an integer >= 1"),
    (dict(workers=0), "workers must be an integer >= 1"),
    (dict(strategy="nsga3"), "unknown strategy 'nsga3'"),
    (dict(objectives=("accuracy", "flops")), "objectives must include accuracy and latency_ms"),
    (dict(evaluator="proxy:zen"), "unknown evaluator 'proxy:zen'"),
    (dict(evaluator_options={"sed": 1}), r"proxy:synflow takes no option\(s\) \['sed'\]"),
    (dict(evaluator="train", evaluator_options={"epochs": 1}), "--evaluator train: its options"),
    (dict(constraints=Constraints(max_params_m=0)), "max-params-m must be > 0"),
], ids=lambda v: str(v)[:30] if isinstance(v, dict) else None)
def test_a_bad_argument_leaves_no_out_dir_and_the_same_out_then_works(demo_lut_path, tmp_path, bad, error):
    out = tmp_path / "runs" / "r"
    with pytest.raises((ValueError, KeyError), match=error):
        _search(demo_lut_path, out, **bad)
    assert not (tmp_path / "runs").exists()
    assert _search(demo_lut_path, out, generations=1).evaluations == 8


def test_a_new_run_failing_in_its_first_generation_is_removed(demo_lut_path, tiny_data, tmp_path):
    """Data that does not fit the space is found only when the first arch is scored: nothing to resume."""
    from hwnas.evaluate.data import DataError

    blob = np.load(tiny_data)
    twelve_classes = tmp_path / "twelve-classes.npz"
    np.savez(twelve_classes, x=blob["x"], y=np.where(blob["y"] < 2, blob["y"] + 10, blob["y"]))
    out = tmp_path / "r"
    with pytest.raises(DataError, match="has 12 classes but the space's networks output 10"):
        _search(demo_lut_path, out, evaluator="proxy:snip", evaluator_options={"data": str(twelve_classes)})
    assert not out.exists()
    assert _search(demo_lut_path, out, generations=1, evaluator="proxy:snip",
                   evaluator_options={"data": tiny_data}).evaluations == 8


def test_generations_0_is_refused_by_the_command(demo_lut_path, tmp_path):
    r = run_cli("search", "--lut", str(demo_lut_path), "--generations", "0", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "--generations: expected a whole number >= 1, got 0" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_a_run_killed_before_it_saved_anything_is_resumed(demo_lut_path, tmp_path):
    """kill -9 between creating run.sqlite and writing its configuration leaves a zero-byte file."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.sqlite").touch()
    with pytest.raises(StoreError, match="already holds a run; add --resume"):
        _search(demo_lut_path, tmp_path / "r", generations=1)
    r = _search(demo_lut_path, tmp_path / "r", generations=1, resume=True)
    assert r.evaluations == 8 and r.resumed_from is None


def test_existing_run_needs_resume_and_same_settings(demo_lut_path, tmp_path):
    _search(demo_lut_path, tmp_path / "r", generations=1)
    with pytest.raises(StoreError, match="already holds a run; add --resume"):
        _search(demo_lut_path, tmp_path / "r", generations=1)
    with pytest.raises(StoreError, match="seed differ"):
        _search(demo_lut_path, tmp_path / "r", generations=2, seed=5, resume=True)
    with pytest.raises(StoreError, match="no run to resume"):
        _search(demo_lut_path, tmp_path / "none", resume=True)


def test_a_resume_keeps_the_strategy_options_the_run_began_with(demo_lut_path, tmp_path):
    """A run records what every option it was not given meant (the defaults of its hwnas). When a later
    hwnas changed a default, resuming says which and how to keep the old value, and does so with it; a run
    from before defaults were recorded resumes as before."""
    out = tmp_path / "r"
    _search(demo_lut_path, out, generations=1)
    store = RunStore(out / "run.sqlite")
    config = store.get_meta("config")
    assert config["strategy_defaults"]["crossover_prob"] == 0.9 and config["strategy_options"] == {}
    store.set_meta("config", {**config, "strategy_defaults": {**config["strategy_defaults"], "crossover_prob": 0.5}})
    store.close()
    before = (out / "run.sqlite").read_bytes()
    with pytest.raises(StoreError, match=r"began with strategy options crossover_prob=0\.5.*"
                                         r"--strategy-option crossover_prob=0\.5"):
        _search(demo_lut_path, out, generations=2, resume=True)
    assert (out / "run.sqlite").read_bytes() == before
    with pytest.raises(StoreError, match="crossover_prob"):  # another value given is refused alike
        _search(demo_lut_path, out, generations=2, resume=True, strategy_options={"crossover_prob": 0.7})
    r = _search(demo_lut_path, out, generations=2, resume=True, strategy_options={"crossover_prob": 0.5})
    assert r.resumed_from == 1
    # a run from before defaults were recorded: only the options given are compared
    store = RunStore(out / "run.sqlite")
    config = store.get_meta("config")
    store.set_meta("config", {k: v for k, v in config.items() if k != "strategy_defaults"})
    store.close()
    with pytest.raises(StoreError, match="strategy_options differ"):
        _search(demo_lut_path, out, generations=3, resume=True, strategy_options={"crossover_prob": 0.5})
    assert _search(demo_lut_path, out, generations=3, resume=True).resumed_from == 2


@pytest.mark.parametrize("strategy", ["evolution", "reinforce", "predictor-guided", "bayesian"])
def test_resume_in_process_equals_uninterrupted(demo_lut_path, tmp_path, strategy):
    """reinforce: the controller's weights, Adam's state and the baseline come back from the run store;
    predictor-guided and bayesian: the archive they refit on, and the generation that seeds the fit."""
    if strategy == "bayesian":
        pytest.importorskip("optuna", reason="the bayesian strategy needs optuna (pip install 'hwnas[bayes]')")
    full = _search(demo_lut_path, tmp_path / "full", generations=4, strategy=strategy)
    _search(demo_lut_path, tmp_path / "part", generations=2, strategy=strategy)
    resumed = _search(demo_lut_path, tmp_path / "part", generations=4, strategy=strategy, resume=True)
    assert resumed.resumed_from == 2
    assert [r.arch_id for r in resumed.front] == [r.arch_id for r in full.front]
    assert [h["evaluations"] for h in resumed.history] == [h["evaluations"] for h in full.history]


def _generations(db) -> int:
    """Committed generations, read the way finalize reads: read-only, never creating the file."""
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.Error:  # not created yet, or its schema not yet written
        return 0


def _wait_for(ready, proc, what: str, timeout: float = 300) -> None:
    """Poll until ``ready()``; fail at once if ``proc`` ended first (the timeout is only a safety net)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the search ended before {what}: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hwnas", *args]


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_front(demo_lut_path, tmp_path):
    common = ["search", "--lut", str(demo_lut_path), "--evaluator", "proxy:synflow", "--population", "10",
              "--generations", "15", "--seed", "1"]
    ref = subprocess.run(_cli(*common, "--out", str(tmp_path / "ref")), capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert ref.returncode in (0, 1), ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    _wait_for(lambda: _generations(out / "run.sqlite") >= 3, proc, "3 committed generations")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= _generations(out / "run.sqlite") < 15, "the run should have been killed part-way"
    # until it is resumed, whatever reads the run refuses it, and leaves it as it is
    before = (out / "run.sqlite").read_bytes()
    for cmd in (("finalize", str(out), "--out", str(tmp_path / "dist")), ("report", str(out))):
        r = run_cli(*cmd)
        assert r.returncode == 2 and "incomplete run: rerun the search with --resume" in r.stderr, r.stderr
    assert (out / "run.sqlite").read_bytes() == before and not (tmp_path / "dist").exists()
    done = subprocess.run(_cli(*common, "--out", str(out), "--resume"), capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    assert "resumed at generation" in done.stdout
    ref_front = json.loads((tmp_path / "ref" / "front.json").read_text())["front"]
    got_front = json.loads((out / "front.json").read_text())["front"]
    assert [r["arch_id"] for r in got_front] == [r["arch_id"] for r in ref_front]
    assert got_front == ref_front
    # the same files, not only the same data: each arch's keys in the space's order, as a fresh run writes them
    assert [list(r["arch"]) for r in got_front] == [list(r["arch"]) for r in ref_front]
    assert run_cli("report", str(out)).returncode == 0


@pytest.mark.slow
def test_a_second_search_on_the_same_run_is_refused(demo_lut_path, tmp_path):
    from hwnas.search.store import RunLock

    out = tmp_path / "r"
    common = ["search", "--lut", str(demo_lut_path), "--population", "8", "--generations", "100000",
              "--out", str(out)]
    first = subprocess.Popen(_cli(*common), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        lock = out / "run.lock"
        _wait_for(lambda: lock.is_file() and lock.read_text() == f"{first.pid}\n", first, "the lock")
        second = run_cli(*common, "--resume")
        assert second.returncode == 2, second.stderr
        assert f"another search is running on {out} (pid {first.pid} holds run.lock)" in second.stderr
        assert "database is locked" not in second.stderr
        assert first.poll() is None  # the first search goes on
    finally:
        first.kill()
        first.wait()
    with RunLock(out):  # kill -9 released it: nothing stale blocks a resume
        pass


def test_incremental_front_equals_front_of_whole_archive(demo_lut_path, tmp_path):
    from hwnas.search.problem import Problem
    from hwnas.search.records import SearchRecord
    from hwnas.search.run import pareto_front

    lut_before = demo_lut_path.read_bytes()
    r = _search(demo_lut_path, tmp_path / "r", generations=5, constraints=Constraints(budget_ms=1e3))
    with sqlite3.connect(tmp_path / "r" / "run.sqlite") as db:
        rows = db.execute("SELECT arch_id, arch, accuracy, latency_ms, params_m, macs_m, memory_mb, layers "
                          "FROM evals").fetchall()
    records = [SearchRecord(arch_id=x[0], arch=json.loads(x[1]), accuracy=x[2], latency_ms=x[3], params_m=x[4],
                            macs_m=x[5], memory_mb=x[6], layers=x[7]) for x in rows]
    problem = Problem(None, None, Constraints(budget_ms=1e3))
    assert [f.arch_id for f in pareto_front(records, problem)] == [f.arch_id for f in r.front]
    assert demo_lut_path.read_bytes() == lut_before  # the search only reads its LUT


def test_only_the_last_generation_keeps_the_strategy_state(demo_lut_path, tmp_path):
    """Resume needs the last state only; a model-based strategy's state is megabytes per generation."""
    _search(demo_lut_path, tmp_path / "r", generations=3, strategy="reinforce")
    store = RunStore(tmp_path / "r" / "run.sqlite", readonly=True)
    try:
        states = [row[0] for row in store.db.execute("SELECT strategy_state FROM generations ORDER BY generation")]
    finally:
        store.close()
    assert states[:2] == ["{}", "{}"] and "controller" in states[2]


def _cannot_score(a) -> bool:
    return max(max(k) for k in a.kernels) == 5 and a.depths[0] == 1


class _FailsOnSomeArchs:
    """A real evaluator (an arch's MACs in millions: a size score) that cannot score some archs, as an
    evaluator meets an arch it was not built for; it records every arch it was asked for."""

    name = "test:fails-on-some"

    def __init__(self):
        self.calls, self.broken = [], False

    def config(self):
        return {}

    def evaluate(self, archs):
        self.calls += [a.id for a in archs]
        if self.broken:
            raise FileNotFoundError("no such data file: x.npz")
        if any(_cannot_score(a) for a in archs):
            raise ValueError("this evaluator cannot score a 5x5 kernel in a one-block first stage")
        return [sum(d.macs for d in a.layers()) / 1e6 for a in archs]


def test_an_arch_the_evaluator_fails_on_is_recorded_and_the_search_goes_on(demo_lut_path, tmp_path, monkeypatch):
    from hwnas.evaluate import base
    from hwnas.evaluate.base import EvaluationFailed, evaluate_each
    from hwnas.spaces.base import get_space

    ev = _FailsOnSomeArchs()
    monkeypatch.setitem(base._REGISTRY, ev.name, lambda **kw: ev)
    r = _search(demo_lut_path, tmp_path / "run", evaluator=ev.name, population=10, generations=3)
    store = RunStore(tmp_path / "run" / "run.sqlite")
    failures = store.failures(ev.name)
    assert failures and all("cannot score a 5x5 kernel" in m for m in failures.values())
    assert r.front and not set(failures) & {x.arch_id for x in r.front}
    assert not set(failures) & set(store.evals(ev.name))
    assert json.loads((tmp_path / "run" / "front.json").read_text())["failed_evaluations"] == failures
    # resumed with more generations: no failed arch is evaluated again
    asked_before = len(ev.calls)
    _search(demo_lut_path, tmp_path / "run", evaluator=ev.name, population=10, generations=5, resume=True)
    assert not set(failures) & set(ev.calls[asked_before:])
    # one failing arch in a chunk does not cost the others their scores
    demo = get_space("demo")
    good = demo.arch_from_dict(r.front[0].arch)
    bad = next(a for a in (demo.sample(i) for i in range(500)) if _cannot_score(a))
    scores = evaluate_each(ev, [good, bad])
    assert scores[0] == pytest.approx(r.front[0].accuracy) and scores[1] != scores[1] and bad.id in scores.errors
    # an evaluator that fails on everything stops the run with its message: it is broken, not the archs
    ev.broken = True
    with pytest.raises(EvaluationFailed, match="could score none of the .*FileNotFoundError: no such data file"):
        _search(demo_lut_path, tmp_path / "broken", evaluator=ev.name)


def test_what_counts_as_a_failure_of_the_machine():
    from hwnas.evaluate.base import transient

    cpu_oom = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 100000000000000 bytes. Error code 12 (Cannot allocate memory)")
    for e in (cpu_oom, MemoryError(), OSError(28, "No space left on device"), ConnectionResetError(),
              TimeoutError(), RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED")):
        assert transient(e), e
    for e in (FileNotFoundError(2, "No such file"), ValueError("bad arch"), RuntimeError("size mismatch"),
              PermissionError(13, "Permission denied")):
        assert not transient(e), e


@pytest.mark.parametrize("error", [MemoryError("cannot allocate"), OSError(28, "No space left on device"),
                                   RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_a_machine_failure_stops_the_run_instead_of_marking_the_arch_failed(demo_lut_path, tmp_path, monkeypatch,
                                                                           error):
    """Out of memory or a full disk says nothing about the arch: recorded as failed, it would never be
    evaluated again. It stops the run with what finished stored; --resume evaluates it again."""
    from hwnas.evaluate import base

    class Flaky(_FailsOnSomeArchs):
        name, fail = "test:machine-failure", True

        def evaluate(self, archs):  # the machine fails while it evaluates some archs; the archs are fine
            if self.fail and any(_cannot_score(a) for a in archs):
                raise error
            return [sum(d.macs for d in a.layers()) / 1e6 for a in archs]

    ev = Flaky()
    monkeypatch.setitem(base._REGISTRY, ev.name, lambda **kw: ev)
    # a full disk is said as such, with the way on (free space, --resume); other failures pass through
    expected = (DiskFullError, "free space, then run the same command with --resume") if isinstance(error, OSError) \
        else (type(error), None)
    with pytest.raises(expected[0], match=expected[1]):
        _search(demo_lut_path, tmp_path / "run", evaluator=ev.name, population=10, generations=3)
    store = RunStore(tmp_path / "run" / "run.sqlite")
    assert not store.failures(ev.name)  # nothing marked failed for good
    store.close()
    ev.fail = False  # the machine is fine again: the resumed run scores every arch
    r = _search(demo_lut_path, tmp_path / "run", evaluator=ev.name, population=10, generations=3, resume=True)
    assert r.front and not RunStore(tmp_path / "run" / "run.sqlite").failures(ev.name)


def test_the_first_arch_failing_does_not_stop_the_run_and_old_stores_still_read(demo_lut_path, tmp_path,
                                                                               monkeypatch):
    """Serially every arch is a chunk of its own: the first one failing must not look like a broken
    evaluator. A run store from before failures were recorded (no such table) is still read."""
    import sqlite3

    from hwnas.evaluate import base
    from hwnas.finalize import read_run

    ev = _FailsOnSomeArchs()
    first = []

    def evaluate(archs, orig=ev.evaluate):
        first.append(first[0] if first else archs[0].id)
        if archs[0].id == first[0]:
            raise ValueError("not this one")
        return orig(archs)

    ev.evaluate = evaluate
    monkeypatch.setitem(base._REGISTRY, ev.name, lambda **kw: ev)
    r = _search(demo_lut_path, tmp_path / "run", evaluator=ev.name, population=6, generations=1)
    assert RunStore(tmp_path / "run" / "run.sqlite").failures(ev.name) == {first[0]: "ValueError: not this one"}
    assert r.front
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    db.execute("DROP TABLE failures")
    db.commit()
    db.close()
    assert read_run(tmp_path / "run") is not None
