"""proxy:vote (hwnas/evaluate/vote.py): proxies combined by rank, on real networks and real data."""
import numpy as np
import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.vote import VoteEvaluator, percentile, rank_vote


def test_rank_vote_and_percentile_by_hand():
    votes = rank_vote({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([30.0, 10.0, 20.0])})
    assert votes.tolist() == [1.0, 0.5, 1.5]  # ranks (0 = worst): a 0,1,2 and b 2,0,1
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    assert percentile(ref, np.array([0.0, 2.0, 10.0])).tolist() == [0.0, 37.5, 100.0]


def test_vote_scores_are_deterministic_and_batch_independent(demo, tiny_data):
    archs = demo.sample_distinct(6, 5)
    ev = create_evaluator("proxy:vote", data=tiny_data, reference=16, seed=0)
    whole = ev.evaluate(archs)
    assert all(0.0 <= v <= 100.0 for v in whole)
    again = create_evaluator("proxy:vote", data=tiny_data, reference=16, seed=0)
    parts = again.evaluate(archs[:2]) + again.evaluate(archs[2:])  # a search scores a batch at a time
    assert parts == pytest.approx(whole)
    assert len(set(whole)) > 1  # it separates architectures


@pytest.mark.parametrize("opts", [{"proxies": "synflow"}, {"proxies": "synflow,bogus"}, {"reference": 2}])
def test_vote_refuses_bad_options(opts):
    with pytest.raises(EvaluatorError, match="proxy:vote"):
        VoteEvaluator(**opts)
