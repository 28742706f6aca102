"""Zero-cost proxy cost per demo-space arch (the "s / arch" column of docs/bench-evaluators.md; was a < 1 s assertion in
tests/test_proxies.py, which a busy shared machine could fail). Run: pytest tests/benchmarks --benchmark-enable"""
import math

import pytest

from hwnas.evaluate import create_evaluator
from hwnas.evaluate.proxies import PROXIES
from hwnas.spaces.base import get_space


@pytest.mark.parametrize("proxy", sorted(PROXIES))
def test_proxy_seconds_per_demo_arch(benchmark, proxy):
    space = get_space("demo")
    ev = create_evaluator(f"proxy:{proxy}", seed=0, **({"data": "digits"} if PROXIES[proxy][1] else {}))
    archs = [space.sample(0), space.largest()]
    ev.evaluate(archs[:1])  # warm: data loading, first-call allocations
    scores = benchmark(ev.evaluate, archs)
    assert all(math.isfinite(s) for s in scores)
    if benchmark.stats:
        per_arch = benchmark.stats.stats.median / len(archs)
        benchmark.extra_info["seconds_per_arch"] = per_arch
        print(f"\nproxy:{proxy}: {per_arch:.3f} s per demo arch (median of {benchmark.stats.stats.rounds} rounds)")
