import math
import time

import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.proxies import PROXIES, synflow


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxy_is_finite_seeded_and_under_a_second(demo, proxy):
    ev = create_evaluator(f"proxy:{proxy}", seed=0)
    archs = [demo.sample(0), demo.largest()]
    ev.evaluate(archs[:1])  # warm (data loading, first-call allocations)
    t = time.perf_counter()
    scores = ev.evaluate(archs)
    per_arch = (time.perf_counter() - t) / len(archs)
    assert all(math.isfinite(s) for s in scores)
    assert per_arch < 1.0, f"{proxy} took {per_arch:.2f} s per demo arch"
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
