import json

import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import CachedEvaluator, create_evaluator, list_evaluators
from hwnas.search.dispatch import make_dispatcher


class CountingEvaluator:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def config(self):
        return {"v": 1}

    def evaluate(self, archs):
        self.calls += len(archs)
        return [float(a.resolution) for a in archs]


def test_cache_avoids_reevaluation(demo):
    inner = CountingEvaluator()
    ev = CachedEvaluator(inner)
    archs = [demo.sample(i) for i in range(5)]
    first = ev.evaluate(archs + archs[:2])
    assert inner.calls == 5 and first[:2] == first[5:]
    assert ev.evaluate(archs) == first[:5] and inner.calls == 5
    assert ev.hits == 7 and ev.misses == 5
    pre = CachedEvaluator(CountingEvaluator(), seed={archs[0].id: 42.0})
    assert pre.evaluate(archs[:1]) == [42.0] and pre.inner.calls == 0


def test_pool_dispatch_gives_the_same_scores(demo):
    archs = [demo.sample(i) for i in range(6)]
    serial = CachedEvaluator(create_evaluator("proxy:synflow")).evaluate(archs)
    pooled = CachedEvaluator(create_evaluator("proxy:synflow"), dispatcher=make_dispatcher(2)).evaluate(archs)
    assert pooled == serial


def test_registry():
    assert {"proxy:synflow", "proxy:naswot", "proxy:grad_norm", "proxy:snip", "supernet", "train",
            "predictor"} <= set(list_evaluators())
    with pytest.raises(EvaluatorError, match="unknown evaluator 'supernet2'"):
        create_evaluator("supernet2")


@pytest.mark.parametrize("name", ["proxy:naswot", "proxy:vote", "train"])
def test_data_limit_is_an_option_of_every_data_evaluator_and_part_of_its_config(name, tiny_data):
    """``data_limit`` changes the images, so it must change the cache key (config) too."""
    whole = create_evaluator(name, data=tiny_data)
    limited = create_evaluator(name, data=tiny_data, data_limit=4)
    assert "data_limit" not in json.dumps(whole.config()) and '"data_limit": 4' in json.dumps(limited.config())
