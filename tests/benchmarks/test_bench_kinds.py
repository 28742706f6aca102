"""Prediction throughput of the newer space kinds' fast paths (target >= 100,000 archs/s for predict_many on
sampled archs), on their shipped LUTs. Run: pytest tests/benchmarks --benchmark-enable"""
import random

import pytest

from hwnas.latency.lut import LUT
from hwnas.latency.predict import LayerSumPredictor, latency_predictor

from conftest import ROOT

N = 10_000
KINDS = {"network-demo": "network", "darts-demo": "darts", "mixed-demo": "mixed"}


def _setup(space_name):
    found = sorted((ROOT / "luts").glob(f"*_ort-cpu_{space_name}.json"))
    if not found:
        pytest.skip(f"no shipped ort-cpu LUT of {space_name}")
    lut = LUT.load(found[0])
    space = lut.search_space()
    rng = random.Random(0)
    return latency_predictor(lut), LayerSumPredictor(lut), [space.sample(rng) for _ in range(N)]


@pytest.mark.parametrize("space_name", sorted(KINDS))
def test_fast_path_throughput(benchmark, space_name):
    fast, generic, archs = _setup(space_name)
    assert type(fast) is not LayerSumPredictor  # the kind's own fast path
    out = benchmark(fast.predict_many, archs)
    assert (abs(out[:200] - generic.predict_many(archs[:200])) < 1e-9).all()
    if benchmark.stats:
        rate = N / benchmark.stats.stats.median
        benchmark.extra_info["predictions_per_s"] = round(rate)
        print(f"\n{space_name} ({KINDS[space_name]}): {rate:,.0f} predictions/s")
