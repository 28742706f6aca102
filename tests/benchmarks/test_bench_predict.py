"""Prediction throughput (target >= 1,000,000 predictions/s for predict_many on archs a search made, whose
genes are cached). Run: pytest tests/benchmarks --benchmark-enable"""
import random

from hwnas.latency.lut import LUT
from hwnas.latency.predict import MBv3LatencyPredictor
from hwnas.spaces.base import get_space

from conftest import ROOT

N = 10_000


def _setup():
    lut = LUT.load(ROOT / "luts" / "amd-epyc-2c_ort-cpu_mbv3.json")
    space = get_space("mbv3")
    rng = random.Random(0)
    return MBv3LatencyPredictor(lut, space), [space.sample(rng) for _ in range(N)]


def _report(benchmark, what):
    if benchmark.stats:
        rate = N / benchmark.stats.stats.median
        benchmark.extra_info["predictions_per_s"] = round(rate)
        print(f"\n{what}: {rate:,.0f} predictions/s (median of {benchmark.stats.stats.rounds} rounds)")


def test_predict_many_throughput(benchmark):
    predictor, archs = _setup()
    out = benchmark(predictor.predict_many, archs)
    assert len(out) == N and (out > 0).all()
    _report(benchmark, "predict_many")


def test_predict_genes_throughput(benchmark):
    """The gene-matrix path a search can take: no arch objects at all."""
    predictor, archs = _setup()
    G = predictor.space.gene_matrix(archs)
    out = benchmark(predictor.predict_genes, G)
    assert (out == predictor.predict_many(archs)).all()
    _report(benchmark, "predict_genes")


def test_predict_single_latency(benchmark):
    predictor, archs = _setup()
    benchmark(predictor.predict, archs[0])
