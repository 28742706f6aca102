"""multifidelity (hwnas/evaluate/multifidelity.py): a proxy and a short training, voted by rank over a list."""
import math

import pytest

from hwnas.evaluate import create_evaluator
from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.multifidelity import MultiFidelityEvaluator, vote_with_training


def test_vote_with_training_by_hand():
    # cheap ranks 0,1,2 and trained ranks 2,0,1: mean ranks 1, 0.5, 1.5
    assert vote_with_training([1.0, 2.0, 3.0], [80.0, 60.0, 70.0]) == [1.0, 0.5, 1.5]
    # a failed training ranks last on its fidelity
    assert vote_with_training([1.0, 2.0], [math.nan, 10.0]) == [0.0, 1.0]


def test_it_ranks_real_archs_by_both_fidelities(demo, tiny_data):
    archs = demo.sample_distinct(3, 7)
    ev = create_evaluator("multifidelity", data=tiny_data, epochs=1)
    scores = ev.evaluate(archs)
    # a mean of two rankings of 3 archs: each in [0, 2], summing to 3 (each ranking sums to 0+1+2)
    assert len(scores) == 3 and all(0.0 <= s <= 2.0 for s in scores) and sum(scores) == pytest.approx(3.0)
    cheap = create_evaluator("proxy:naswot", data=tiny_data).evaluate(archs)
    trained = create_evaluator("train", data=tiny_data, max_epochs=1, patience=0).evaluate(archs)
    assert scores == vote_with_training(cheap, trained)  # the same seeds, the same two fidelities
    cfg = ev.config()
    assert cfg["train"]["max_epochs"] == 1 and cfg["proxy"]["proxy"] == "naswot" and cfg["data"] == tiny_data


@pytest.mark.parametrize("opts, match", [({"proxy": "bogus"}, "proxy="), ({"epochs": 0}, "epochs="),
                                         ({"epochs": 1.5}, "epochs=")])
def test_bad_options_are_refused(opts, match):
    with pytest.raises(EvaluatorError, match=match):
        MultiFidelityEvaluator(**opts)
