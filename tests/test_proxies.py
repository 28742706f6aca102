import math

import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.proxies import PROXIES, SIZE_PROXIES, synflow


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxy_is_finite_and_seeded(demo, proxy):
    """(How long a proxy takes is in tests/benchmarks/test_bench_proxies.py, not asserted here.)"""
    data = {"data": "digits"} if PROXIES[proxy][1] else {}
    ev = create_evaluator(f"proxy:{proxy}", seed=0, **data)
    archs = [demo.sample(0), demo.largest()]
    scores = ev.evaluate(archs)
    assert all(math.isfinite(s) for s in scores)
    assert create_evaluator(f"proxy:{proxy}", seed=0, **data).evaluate(archs) == scores
    if proxy not in SIZE_PROXIES:  # size does not depend on the seed
        assert create_evaluator(f"proxy:{proxy}", seed=1, **data).evaluate(archs) != scores
    assert scores[0] != scores[1]


@pytest.mark.parametrize("name", ["proxy:snip", "proxy:vote", "train"])
def test_an_evaluator_that_reads_images_is_given_them_or_says_so(demo, name):
    """No silent data set: an evaluator that reads images and was given none names the flag, before any work."""
    from hwnas.evaluate.data import DataError

    with pytest.raises(DataError, match=r"reads images but no data set was given: add --data DATA"):
        create_evaluator(name).evaluate([demo.smallest()])


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


def test_meco_is_data_free_and_prefers_decorrelated_channels(demo):
    """MeCo reads no data (its config has none, data options change nothing) and scores the largest demo
    network above the smallest: more layers with decorrelated channels add more smallest eigenvalues."""
    from hwnas.evaluate.proxies import meco

    assert "data" not in create_evaluator("proxy:meco", data="digits").config()
    assert create_evaluator("proxy:meco", data="digits").evaluate([demo.largest()]) == \
        create_evaluator("proxy:meco").evaluate([demo.largest()])
    assert meco(demo.largest()) > meco(demo.smallest()) > 0


def test_meco_counts_each_feature_map_once():
    """A container's output is its last child's: hooking leaves only, nesting a network deeper must not
    change its score (the paper's every-module hook would count the container's output again)."""
    import torch
    from torch import nn

    from hwnas.evaluate import proxies

    class Flat:  # the least an arch needs to be scored: a space (channels), a resolution, a build()
        resolution, space = 8, type("S", (), {"in_channels": 3})()

        def __init__(self, nested: bool):
            self.nested = nested

        def build(self) -> nn.Module:
            torch.manual_seed(0)
            convs = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)]
            return nn.Sequential(nn.Sequential(*convs)) if self.nested else nn.Sequential(*convs)

    assert proxies.meco(Flat(True)) == pytest.approx(proxies.meco(Flat(False)))
    assert proxies.meco(Flat(False)) > 0


def test_size_proxies_are_the_layer_counts(demo):
    from hwnas.spaces.base import layer_costs

    a = demo.largest()
    macs, params = layer_costs(a.layers())
    assert create_evaluator("proxy:macs").evaluate([a]) == [float(macs)]
    assert create_evaluator("proxy:params").evaluate([a]) == [float(params)]
