import random

import numpy as np
import pytest

from hwnas.lut import LUT
from hwnas.predict import Calibration, LatencyPredictor, MissingEntriesError
from hwnas.space import Arch


def _archs_at(space, res, n, seed=0):
    rng = random.Random(seed)
    return [Arch(space, res, a.width, a.kernels, a.expands) for a in (space.sample(rng) for _ in range(n))]


def test_uncalibrated_prediction_is_the_sum_of_lut_entries(demo_lut, demo):
    predictor = LatencyPredictor(demo_lut, calibrated=False)
    for arch in _archs_at(demo, 24, 20):
        expected = sum(demo_lut.entries[d.key]["median_ms"] for d in arch.layers())
        assert predictor.predict(arch) == pytest.approx(expected, rel=1e-12)
        assert sum(ms for _, ms in predictor.breakdown(arch)) == pytest.approx(expected, rel=1e-12)


def test_predict_many_equals_predict(demo_lut, demo):
    predictor = LatencyPredictor(demo_lut)
    archs = _archs_at(demo, 24, 50, seed=1)
    many = predictor.predict_many(archs)
    assert many.shape == (50,)
    assert np.allclose(many, [predictor.predict(a) for a in archs])
    assert predictor.predict_many([]).shape == (0,)


def test_calibration_is_applied(demo_lut, demo):
    demo_lut.calibration = {"coef": [0.5, 0.0, 0.01, 0.2], "model": "boundary"}
    predictor = LatencyPredictor(demo_lut)
    arch = _archs_at(demo, 24, 1)[0]
    raw = sum(demo_lut.entries[d.key]["median_ms"] for d in arch.layers())
    assert predictor.predict(arch) == pytest.approx(0.5 * raw + 0.01 * len(arch.layers()) + 0.2)
    assert Calibration().apply(np.array([[2.0, 9.0, 9.0, 1.0]])) == pytest.approx([2.0])


def test_missing_entries_fail_with_the_keys_and_the_fill_command(demo_lut_path, demo):
    lut = LUT.load(demo_lut_path)
    predictor = LatencyPredictor(lut)
    arch = _archs_at(demo, 32, 1)[0]  # the fixture LUT only holds 24 px
    with pytest.raises(MissingEntriesError) as e:
        predictor.predict(arch)
    msg = str(e.value)
    assert "no entry for" in msg and "conv:r32:i3:o8:k3:s2:hswish" in msg
    assert "python tools/profile_device.py --profiler torch-cpu --space demo --resolutions 32" in msg
    # and one missing block inside an otherwise complete resolution is caught too
    arch24 = _archs_at(demo, 24, 1)[0]
    gone = arch24.layers()[3].key
    del lut.entries[gone]
    with pytest.raises(MissingEntriesError, match=gone):
        LatencyPredictor(lut).predict_many([_archs_at(demo, 24, 1, seed=5)[0], arch24])


def test_latency_grows_with_the_network(demo_lut, demo):
    predictor = LatencyPredictor(demo_lut, calibrated=False)
    small = Arch(demo, 24, 1.0, *(lambda a: (a.kernels, a.expands))(demo.smallest()))
    big = Arch(demo, 24, 1.0, *(lambda a: (a.kernels, a.expands))(demo.largest()))
    assert predictor.predict(big) > 1.5 * predictor.predict(small)


def test_fastest_is_a_true_minimum(demo_lut, demo):
    from dataclasses import replace

    demo_lut.calibration = {"coef": [0.9, 0.05, 0.01, 0.1], "model": "boundary"}
    space = replace(demo, resolutions=(24,))
    predictor = LatencyPredictor(demo_lut, space)
    arch, fastest = predictor.fastest()
    assert fastest == pytest.approx(predictor.predict(arch))
    rng = random.Random(0)
    others = [space.sample(rng) for _ in range(2000)] + [space.smallest()]
    assert fastest <= predictor.predict_many(others).min() + 1e-12
    # no single-gene change makes it faster
    ub = space.gene_upper_bounds()
    genes = arch.genes()
    for i, top in enumerate(ub):
        for v in range(top + 1):
            g = list(genes)
            g[i] = v
            assert predictor.predict(space.from_genes(g)) >= fastest - 1e-12
