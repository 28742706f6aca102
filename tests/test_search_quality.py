import json
import random

import pytest

from hwnas.core.errors import InputError
from hwnas.bench.reference import Recipe
from hwnas.latency.lut import LUT
from hwnas.latency.predict import MBv3LatencyPredictor
from hwnas.bench.search_quality import budget_in_the_middle, format_quality, latency_twin, run_search_quality


def test_searched_archs_are_paired_with_latency_twins_and_trained(demo_lut_path, tiny_data, tmp_path):
    recipe = Recipe(tiny_data, None, epochs=1, batch_size=32)
    kw = dict(evaluator="proxy:synflow", recipe=recipe, seeds=(0, 1), top=2, population=6, generations=2,
              workers=1, progress=False, log=lambda _: None)
    q = run_search_quality(demo_lut_path, tmp_path, **kw)
    searched, twins = q.group("searched"), q.group("random")
    assert len(searched) == len(twins) == 2
    lo, hi = q.latency_range_ms
    assert lo < q.budget_ms < hi
    for s, r in zip(searched, twins):
        assert s.latency_ms <= q.budget_ms and abs(r.latency_ms / s.latency_ms - 1) <= q.tolerance
        assert len(s.test_acc) == len(r.test_acc) == 2 and all(0 <= v <= 100 for v in s.test_acc + r.test_acc)
        assert s.evaluator_score is not None and r.evaluator_score is None and s.arch_id != r.arch_id
    assert searched[0].evaluator_score >= searched[1].evaluator_score  # the most accurate of the front first
    s = q.summary()
    assert s["gain"] == pytest.approx(s["searched_mean"] - s["random_mean"])
    assert s["beats_seed_spread"] == (s["gain"] > s["seed_sd"])
    assert "latency-matched random" in format_quality(q)
    json.dumps(q.to_dict())
    # a rerun searches and trains nothing again: the same picks and accuracies
    again = run_search_quality(demo_lut_path, tmp_path, **kw)
    assert [p.test_acc for p in again.picks] == [p.test_acc for p in q.picks]


def test_an_impossible_latency_twin_is_a_clear_error(demo_lut_path, demo):
    predictor = MBv3LatencyPredictor(LUT.load(demo_lut_path), demo.with_resolutions([24]))
    budget, fastest, largest = budget_in_the_middle(predictor)
    with pytest.raises(InputError, match="widen --tolerance"):
        latency_twin(predictor.space, predictor, largest * 10, random.Random(0), set(), tries=2, batch=50)
