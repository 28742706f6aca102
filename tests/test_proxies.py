import math

import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.proxies import PROXIES, synflow


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxy_is_finite_and_seeded(demo, proxy):
    """(How long a proxy takes is in tests/benchmarks/test_bench_proxies.py, not asserted here.)"""
    ev = create_evaluator(f"proxy:{proxy}", seed=0)
    archs = [demo.sample(0), demo.largest()]
    scores = ev.evaluate(archs)
    assert all(math.isfinite(s) for s in scores)
    assert create_evaluator(f"proxy:{proxy}", seed=0).evaluate(archs) == scores
    assert create_evaluator(f"proxy:{proxy}", seed=1).evaluate(archs) != scores
    assert scores[0] != scores[1]


def test_data_proxies_record_their_data(demo, tiny_data):
    cfg = create_evaluator("proxy:snip", data=tiny_data).config()
    assert cfg["data"] == tiny_data and len(cfg["data_digest"]) == 16 and cfg["batch_size"] == 64
    assert "data" not in create_evaluator("proxy:synflow", data=tiny_data).config()


def test_synflow_prefers_the_bigger_network(demo):
    assert synflow(demo.largest()) > synflow(demo.smallest())


def test_unknown_proxy():
    with pytest.raises(EvaluatorError, match="unknown evaluator 'proxy:zen'"):
        create_evaluator("proxy:zen")


def test_a_misspelt_option_is_refused_not_dropped():
    """synflow ignores the data options; a typo must not be ignored with them."""
    with pytest.raises(EvaluatorError, match=r"proxy:synflow takes no option\(s\) \['sed'\]"):
        create_evaluator("proxy:synflow", sed=1)
    assert create_evaluator("proxy:synflow", data="digits", seed=2).config()["seed"] == 2
