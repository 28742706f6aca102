"""The evaluator bench (hwnas/bench/evaluators.py) end to end, at toy size on real digits."""
import math

import pytest

from hwnas.bench.evaluators import format_table, run_evaluator_bench
from hwnas.bench.reference import Recipe
from hwnas.evaluate.supernet import SupernetConfig


@pytest.mark.slow
def test_bench_ranks_every_evaluator_against_a_two_seed_reference(tmp_path, demo, tiny_data):
    recipe = Recipe(data=tiny_data, data_limit=None, epochs=1, part="val")
    supernet = SupernetConfig(data=tiny_data, epochs=1, batch_size=32, random_subnets=1)
    bench = run_evaluator_bench(demo, tmp_path, recipe, n_archs=4, seed=0, supernet=supernet, predictor_archs=12,
                                workers=1, reference_seeds=2, log=lambda s: None, vote_reference=8)
    names = [r.evaluator for r in bench.rows]
    assert names[:2] == ["supernet", "predictor"]
    assert {"proxy:synflow", "proxy:naswot", "proxy:grad_norm", "proxy:snip"} <= set(names)
    assert names[-2:] == ["train, mean of 2 seeds (reference)", "train seed 0 vs 1"]
    # the reference is the per-arch mean of the two training runs, each a real accuracy in %
    assert len(bench.reference_runs) == 2 and all(len(r) == 4 for r in bench.reference_runs)
    for mean, a, b in zip(bench.reference, *bench.reference_runs):
        assert mean == pytest.approx((a + b) / 2) and 0 <= a <= 100 and 0 <= b <= 100
    for r in bench.rows:
        assert math.isnan(r.kendall_tau) or -1 <= r.kendall_tau <= 1, r
        assert r.secs_per_eval >= 0
    assert all(len(v) == 4 for v in bench.scores.values())
    table = format_table(bench)
    assert "train seed 0 vs 1" in table and "noise ceiling" in bench.rows[-1].note
    # proxies only, against what the reference saved: nothing is trained again
    cheap = run_evaluator_bench(demo, tmp_path, recipe, n_archs=4, seed=0, predictor_archs=12, workers=1,
                                reference_seeds=2, log=lambda s: None, vote_reference=8, with_supernet=False,
                                saved_only=True)
    assert cheap.reference_runs == bench.reference_runs and "supernet" not in cheap.scores
    assert cheap.scores["proxy:naswot"] == bench.scores["proxy:naswot"]


def test_bench_on_a_reference_never_trained_says_what_to_run(tmp_path, demo, tiny_data):
    from hwnas.core.errors import InputError

    with pytest.raises(InputError, match="run tools/bench_reference.py"):
        run_evaluator_bench(demo, tmp_path, Recipe(data=tiny_data, data_limit=None, epochs=1), n_archs=4,
                            with_supernet=False, saved_only=True, log=lambda s: None)
