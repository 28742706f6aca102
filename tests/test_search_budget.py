"""Issue 31: proposals within the checkable constraints, termination criteria, fronts in every objective,
progressive on cell spaces. Real runs: the shipped LUTs, the run store, proxy evaluators."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.search import Constraints, run_search
from hwnas.search.store import RunStore

LUTS = Path(__file__).resolve().parents[1] / "luts"
DEMO = LUTS / "amd-epyc-2c_ort-cpu_demo.json"
CELL = LUTS / "amd-epyc-2c_ort-cpu_cell-demo.json"


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=8, generations=3, seed=0, progress=False)
    args.update(kw)
    return run_search(lut, out, **args)


def _tight_budget(lut_path, share=0.15):
    """A budget that only about ``share`` of random archs meet."""
    import random

    p = latency_predictor(LUT.load(lut_path))
    rng = random.Random(1)
    lat = np.sort(p.predict_many([p.space.sample(rng) for _ in range(400)]))
    return float(lat[int(share * len(lat))])


STRATEGIES = ["nsga2", "evolution", "random", "reinforce", "progressive", "predictor-guided", "bayesian"]


@pytest.mark.parametrize("lut", [DEMO, CELL], ids=["demo", "cell-demo"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_evaluation_over_a_tight_budget_after_the_first_generation(tmp_path, strategy, lut):
    if strategy == "bayesian":
        pytest.importorskip("optuna", reason="the bayesian strategy needs optuna (pip install 'hwnas[bayes]')")
    budget = _tight_budget(lut)
    r = _search(lut, tmp_path / "r", strategy=strategy, generations=4, constraints=Constraints(budget_ms=budget))
    assert r.outside["after_first_generation"] == {"budget_ms": 0}, r.outside
    store = RunStore(tmp_path / "r" / "run.sqlite", readonly=True)
    try:
        ids = set(store.evaluated_ids())
        evals = store.evals("proxy:synflow")
    finally:
        store.close()
    # the store agrees: every evaluated arch of the run is within the budget (the first generation too here)
    assert all(evals[i].latency_ms <= budget for i in ids if i in evals)
    front = json.loads((tmp_path / "r" / "front.json").read_text())
    assert front["outside_constraints"]["after_first_generation"] == {"budget_ms": 0}
    assert all(h["outside"] == {"budget_ms": 0} for h in r.history[1:])


def test_every_checkable_limit_is_kept_and_counted(tmp_path):
    """params, MACs, memory and layers too; min_accuracy is counted, never repaired (only an evaluation
    can check it)."""
    p = latency_predictor(LUT.load(DEMO))
    from hwnas.search.records import SearchRecord
    import random

    rng = random.Random(0)
    recs = [SearchRecord.of(a, 0.0, 0.0) for a in (p.space.sample(rng) for _ in range(300))]
    med = {f: float(np.median([getattr(r, f) for r in recs])) for f in ("params_m", "macs_m", "memory_mb")}
    c = Constraints(max_params_m=med["params_m"], max_macs_m=med["macs_m"] * 1.2, max_memory_mb=med["memory_mb"] * 1.5,
                    min_accuracy=1e-9)
    r = _search(DEMO, tmp_path / "r", strategy="nsga2", generations=3, constraints=c)
    later = r.outside["after_first_generation"]
    assert later["max_params_m"] == later["max_macs_m"] == later["max_memory_mb"] == 0, r.outside
    assert set(later) == {"max_params_m", "max_macs_m", "max_memory_mb", "min_accuracy"}
    for x in r.front:
        assert x.params_m <= c.max_params_m and x.macs_m <= c.max_macs_m and x.memory_mb <= c.max_memory_mb


def test_a_limit_below_the_smallest_arch_is_refused_before_out(tmp_path):
    from hwnas.search import InfeasibleBudgetError

    with pytest.raises(InfeasibleBudgetError, match=r"--max-params-m 1e-06 is below the smallest architecture"):
        _search(DEMO, tmp_path / "x", constraints=Constraints(max_params_m=1e-6))
    assert not (tmp_path / "x").exists()


def test_proposals_any_evaluates_over_the_budget_as_before(tmp_path):
    budget = _tight_budget(DEMO)
    r = _search(DEMO, tmp_path / "r", strategy="random", constraints=Constraints(budget_ms=budget), proposals="any")
    assert r.outside["after_first_generation"]["budget_ms"] > 0


def test_an_unconstrained_run_is_what_it_was(tmp_path):
    """No checkable constraint: nothing is restricted and the config has no new key (resumes of older runs and
    their fronts are unchanged)."""
    r = _search(DEMO, tmp_path / "r", strategy="nsga2")
    cfg = json.loads((tmp_path / "r" / "front.json").read_text())["config"]
    assert "proposals" not in cfg and r.stopped["reason"] == "generations"


# -- termination ---------------------------------------------------------------------------------------------

def _stop_and_resume(tmp_path, **kw):
    """The run stopped by a criterion, and the same run interrupted after 1 generation and resumed with the
    same flags: they stop at the same generation with the same front."""
    full = _search(DEMO, tmp_path / "full", **kw)
    _search(DEMO, tmp_path / "part", **{**kw, "generations": 1})
    part = _search(DEMO, tmp_path / "part", resume=True, **kw)
    assert part.resumed_from == 1
    assert part.stopped["reason"] == full.stopped["reason"]
    assert part.stopped["generations"] == full.stopped["generations"]
    assert [r.arch_id for r in part.front] == [r.arch_id for r in full.front]
    again = _search(DEMO, tmp_path / "part", resume=True, **kw)  # a finished run resumed stops where it stopped
    assert again.stopped == {**part.stopped, "elapsed_s": again.stopped["elapsed_s"]}
    return full


def test_max_evaluations_stops_at_exactly_n(tmp_path):
    full = _stop_and_resume(tmp_path, generations=50, max_evaluations=21)
    assert full.stopped["reason"] == "max_evaluations" and full.evaluations == 21
    assert full.stopped["evaluations"] == 21 and full.stopped["generations"] == 3


def test_stop_when_stalled(tmp_path):
    full = _stop_and_resume(tmp_path, generations=60, stop_when_stalled=2, strategy="nsga2", population=6)
    assert full.stopped["reason"] == "stalled"
    hv = [h["hypervolume"] for h in full.history]
    assert len(hv) < 60 and hv[-1] == hv[-3] and (len(hv) == 3 or hv[-3] > hv[-4])


def test_time_budget_counts_the_stored_elapsed_time(tmp_path):
    """No clock in the test: the stored elapsed time of the first session is set, and the resumed run
    counts it: under the budget it goes on, at the budget it stops before another generation, saying why."""
    out = tmp_path / "r"
    _search(DEMO, out, generations=1, time_budget_s=3600)
    store = RunStore(out / "run.sqlite")
    store.set_meta("elapsed_s", 60.0)
    store.close()
    r = _search(DEMO, out, generations=2, time_budget_s=3600, resume=True)
    assert r.stopped["reason"] == "generations" and r.stopped["elapsed_s"] >= 60.0
    store = RunStore(out / "run.sqlite")
    store.set_meta("elapsed_s", 3600.0)
    store.close()
    r = _search(DEMO, out, generations=100, time_budget_s=3600, resume=True)
    assert r.stopped["reason"] == "time_budget" and r.stopped["generations"] == 2 and len(r.history) == 2
    assert "time budget 1.00 h spent" in r.stopped["message"]
    again = _search(DEMO, out, generations=100, time_budget_s=3600, resume=True)
    assert again.stopped["reason"] == "time_budget" and again.stopped["generations"] == 2


def test_termination_flags_on_the_command_line(tmp_path):
    from conftest import run_cli

    out = tmp_path / "r"
    r = run_cli("search", "--lut", str(DEMO), "--evaluator", "proxy:synflow", "--population", "6", "--generations",
                "40", "--max-evaluations", "10", "--time-budget", "2h", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "stopped: 10 evaluations reached (--max-evaluations)" in r.stdout
    # the old spelling of --wall-time still works for one release, with a warning line naming the new one
    assert "warning: --time-budget is deprecated, use --wall-time" in r.stderr
    for bad, says in (("--wall-time=2x", "expected a duration such as 90 (seconds), 90s"),
                      ("--time-budget=2x", "expected a duration such as 90 (seconds), 90s"),
                      ("--max-evaluations=0", "whole number"),
                      ("--stop-when-stalled=x", "whole number")):
        r = run_cli("search", "--lut", str(DEMO), bad, "--out", str(tmp_path / "bad"))
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
        assert not (tmp_path / "bad").exists()


def test_wall_time_and_device_time_read_one_grammar():
    """search --wall-time and profile --device-time: the one parser (hwnas.core.durations), a bad value one line."""
    from conftest import cli_here

    for args in (("search", "--lut", str(DEMO), "--out", "/tmp/never", "--wall-time", "10x"),
                 ("profile", "--transfer-from", str(DEMO), "--out", "/tmp/never.json", "--device-time", "10x"),
                 ("profile", "--transfer-from", str(DEMO), "--out", "/tmp/never.json", "--time-budget", "0")):
        r = cli_here(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "expected a duration" in r.stderr, r.stderr
        assert f"argument {args[-2]}" in r.stderr


def test_parse_duration():
    """One grammar for search's --wall-time and profile's --device-time: plain seconds, or numbers with units."""
    from hwnas.core.durations import DurationError, parse_duration

    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    assert parse_duration("90") == 90 and parse_duration(" 1.5 ") == 1.5 and parse_duration("5m") == 300
    assert parse_duration("1.5h") == 5400 and parse_duration("1d") == 86400 and parse_duration("1h 30m") == 5400
    for bad in ("", "h", "2x", "-1h", "0s", "0", "-5", "nan", "inf", "1h30"):
        with pytest.raises(DurationError):
            parse_duration(bad)


# -- fronts in every objective -------------------------------------------------------------------------------

OBJ4 = ("accuracy", "latency_ms", "params_m", "memory_mb")


def _brute_front(records, objectives):
    sign = {"accuracy": -1}
    pts = {r.arch_id: np.array([sign.get(o, 1) * getattr(r, o) for o in objectives]) for r in records}
    return {a for a, f in pts.items()
            if not any(np.all(g <= f) and np.any(g < f) for b, g in pts.items() if b != a)}


def test_a_4_objective_front_is_the_brute_force_non_dominated_set(tmp_path):
    r = _search(CELL, tmp_path / "r", evaluator="proxy:synflow", strategy="random", population=10, generations=4,
                objectives=OBJ4)
    store = RunStore(tmp_path / "r" / "run.sqlite", readonly=True)
    try:
        evals = store.evals("proxy:synflow")
    finally:
        store.close()
    assert {x.arch_id for x in r.front} == _brute_front(evals.values(), OBJ4)
    assert len(r.front) > len(_brute_front(evals.values(), OBJ4[:2]))  # the other trade-offs are kept
    made = json.loads((tmp_path / "r" / "front.json").read_text())
    assert made["objectives"] == list(OBJ4)
    header = (tmp_path / "r" / "front.csv").read_text().splitlines()[0].split(",")
    assert all(o in header for o in OBJ4)
    assert all(h["hypervolume"] > 0 for h in r.history)


def test_hypervolume_exact_in_3d_and_estimated_beyond():
    from hwnas.search.pareto import hypervolume, hypervolume_3d, hypervolume_mc

    rng = np.random.default_rng(0)
    P = rng.random((12, 3))
    ref = (1.0, 1.0, 1.0)
    grid = (np.arange(60) + 0.5) / 60  # the dominated share of the unit cube on a 60^3 grid
    X = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    dominated = np.zeros(len(X), bool)
    for p in P:
        dominated |= np.all(p <= X, axis=1)
    assert hypervolume_3d(P, ref) == pytest.approx(dominated.mean(), abs=4e-3)
    # boxes: one point, and two that overlap
    assert hypervolume_3d(np.array([[0.5, 0.5, 0.5]]), ref) == pytest.approx(0.125)
    assert hypervolume_3d(np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]), ref) == pytest.approx(0.375)
    # 4-D: seeded, so the same front gives the same number; close to the exact volume of a box
    Q = np.array([[0.5, 0.5, 0.5, 0.5]])
    assert hypervolume(Q, (1, 1, 1, 1)) == hypervolume(Q, (1, 1, 1, 1)) == pytest.approx(0.0625)
    Q = np.array([[0.2, 0.6, 0.5, 0.5], [0.6, 0.2, 0.5, 0.5]])
    exact = 0.8 * 0.4 * 0.25 * 2 - 0.4 * 0.4 * 0.25
    assert hypervolume_mc(Q, (1, 1, 1, 1)) == pytest.approx(exact, rel=0.02)


def test_the_report_draws_every_projection(tmp_path):
    pytest.importorskip("matplotlib")
    from hwnas.finalize.report import rerender

    _search(CELL, tmp_path / "r", evaluator="proxy:synflow", population=6, generations=2, objectives=OBJ4)
    paths = rerender(tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "pareto.png" in md and "params (M)" in md and "memory (MB)" in md and "stopped" in md
    from PIL import Image

    with Image.open(tmp_path / "r" / "pareto.png") as im:  # three panels side by side
        assert im.width > 2 * im.height
    assert paths[1].is_file()


# -- progressive on cell spaces ------------------------------------------------------------------------------

def test_progressive_runs_on_cell_demo_and_widens(tmp_path):
    from hwnas.search.strategies import complexity, create_strategy
    from hwnas.spaces.base import get_space

    space = get_space("cell-demo")
    s = create_strategy("progressive", space, population=6, seed=0,
                        phases=3, generations_per_phase=1)
    caps = []
    for _ in range(3):
        caps.append(s.complexity_cap())
        archs = s.ask()
        assert all(complexity(a) <= caps[-1] + 1e-12 for a in archs) or caps[-1] == float("inf")
        s.tell(archs, np.zeros((len(archs), 2)), np.zeros(len(archs)))
    assert caps[0] < caps[1] < caps[2] == float("inf")
    a = _search(CELL, tmp_path / "a", strategy="progressive", evaluator="proxy:synflow", generations=4,
                strategy_options={"generations_per_phase": 1})
    b = _search(CELL, tmp_path / "b", strategy="progressive", evaluator="proxy:synflow", generations=4,
                strategy_options={"generations_per_phase": 1})
    assert a.front and [r.arch_id for r in a.front] == [r.arch_id for r in b.front]


# -- a safety margin below the budget (issue 44 item 5) ------------------------------------------------------

def test_margin_keeps_every_pick_below_the_budget_less_the_margin_and_is_recorded(tmp_path):
    from conftest import run_cli

    budget = _tight_budget(DEMO, 0.5)
    out = tmp_path / "r"
    r = run_cli("search", "--lut", str(DEMO), "--evaluator", "proxy:synflow", "--population", "8", "--generations",
                "3", "--budget-ms", f"{budget:.6f}", "--margin", "10%", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    made = json.loads((out / "front.json").read_text())
    assert made["config"]["constraints"] == {"budget_ms": pytest.approx(budget, rel=1e-6), "margin": 0.1}
    assert made["front"] and all(f["latency_ms"] <= budget * 0.9 + 1e-12 for f in made["front"])
    # the same search without a margin finds archs between budget x 0.9 and the budget: the margin excluded them
    plain = _search(DEMO, tmp_path / "plain", constraints=Constraints(budget_ms=budget))
    store = RunStore(out / "run.sqlite", readonly=True)
    try:
        evals = store.evals("proxy:synflow")
    finally:
        store.close()
    within = [e for e in evals.values() if budget * 0.9 < e.latency_ms <= budget]
    assert all(r.latency_ms <= budget for r in plain.front)
    assert not any(f["arch_id"] in {e.arch_id for e in within} for f in made["front"])


def test_margin_flag_takes_a_percentage_or_a_fraction_and_refuses_the_rest(tmp_path):
    from conftest import cli_here

    from hwnas.app.args import fraction_or_percent

    assert fraction_or_percent("5%") == pytest.approx(0.05) and fraction_or_percent("0.05") == 0.05
    assert fraction_or_percent(" 12.5% ") == pytest.approx(0.125) and fraction_or_percent("0") == 0.0
    for bad, says in (("5", "did you mean 5%?"), ("100%", "below 100%"), ("-1%", "from 0%"), ("x", "a percentage"),
                      ("nan", "a percentage")):
        r = cli_here("search", "--lut", str(DEMO), "--budget-ms", "1", f"--margin={bad}", "--out", str(tmp_path / "b"))
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    r = cli_here("search", "--lut", str(DEMO), "--margin", "5%", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "give --budget-ms too" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    fastest = latency_predictor(LUT.load(DEMO)).fastest()[1]
    r = cli_here("search", "--lut", str(DEMO), "--budget-ms", f"{fastest * 1.01:.6f}", "--margin", "20%",
                 "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "less the --margin of 20 %" in r.stderr and "Lower --margin" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()
