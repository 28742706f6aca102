"""hwnas search --refine (hwnas/search/refine.py): the best feasible archs trained briefly and re-ranked."""
import json

import pytest

from hwnas.finalize.source import pick_record
from hwnas.search import Constraints, run_search
from hwnas.core.errors import SearchError
from hwnas.search.refine import REFINE_FILE, RefineError, refine_run
from hwnas.search.runs import read_run

from conftest import cli_here


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=8, generations=2, seed=0, progress=False,
                constraints=Constraints(budget_ms=1e3))
    args.update(kw)
    return run_search(lut, out, **args)


@pytest.mark.slow  # five short trainings: ~90 s on a busy 2-core machine
def test_refine_re_ranks_the_best_feasible_and_finalize_takes_its_pick(demo_lut_path, tiny_data, tmp_path):
    result = _search(demo_lut_path, tmp_path / "run", data=tiny_data, refine=3, refine_epochs=1)
    ref = result.refined
    assert ref is not None and len(ref.candidates) == 3 and ref.trained_now == 3
    run = read_run(tmp_path / "run")
    feasible = sorted((r for r in run.evals.values()), key=lambda r: (r.accuracy, -r.latency_ms, r.arch_id))
    assert [c.arch_id for c in ref.candidates] == [r.arch_id for r in feasible[::-1][:3]]  # the 3 best by score
    assert all(0.0 <= c.trained_acc <= 100.0 for c in ref.candidates)
    best = max(ref.candidates, key=lambda c: c.vote)
    assert ref.pick == best.arch_id or any(c.vote == best.vote for c in ref.candidates if c.arch_id == ref.pick)
    saved = json.loads((tmp_path / "run" / REFINE_FILE).read_text())
    assert saved["pick"] == ref.pick and set(saved["trained"]) == {c.arch_id for c in ref.candidates}
    assert pick_record(run).arch_id == ref.pick  # finalize --pick best takes the refined pick
    assert any("refined pick" in line for line in result.lines())
    # run again: the saved trainings are reused, the same pick
    again = refine_run(tmp_path / "run", 3, 1, log=lambda s: None)
    assert again.trained_now == 0 and again.pick == ref.pick
    # another number of epochs is another configuration: trained again
    other = refine_run(tmp_path / "run", 2, 2, log=lambda s: None)
    assert other.trained_now == 2


def test_refine_needs_data_and_sensible_counts_before_the_run_is_made(demo_lut_path, tiny_data, tmp_path):
    with pytest.raises(RefineError, match="--data"):
        _search(demo_lut_path, tmp_path / "a", refine=3)
    with pytest.raises(RefineError, match="--refine must be"):
        _search(demo_lut_path, tmp_path / "b", refine=1, data=tiny_data)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_relative_evaluator_is_refused_as_a_search_objective(demo_lut_path, tiny_data, tmp_path):
    with pytest.raises(SearchError, match="--refine"):
        _search(demo_lut_path, tmp_path / "c", evaluator="multifidelity", data=tiny_data)
    r = cli_here("search", "--lut", str(demo_lut_path), "--evaluator", "multifidelity", "--data", tiny_data,
                 "--out", str(tmp_path / "d"))
    errors = [line for line in r.stderr.splitlines() if not line.startswith("note:")]  # the LUT's resolution note
    assert r.returncode == 2 and len(errors) == 1 and "--refine" in errors[0]
    assert not (tmp_path / "d").exists()
