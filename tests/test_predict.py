import random

import numpy as np
import pytest

from hwnas.latency.lut import LUT
from hwnas.latency.predict import Calibration, MBv3LatencyPredictor, MissingEntriesError
from hwnas.spaces.mbv3 import MBv3Arch


def _archs_at(space, res, n, seed=0):
    rng = random.Random(seed)
    return [MBv3Arch(space, res, a.width, a.kernels, a.expands) for a in (space.sample(rng) for _ in range(n))]


def test_uncalibrated_prediction_is_the_sum_of_lut_entries(demo_lut, demo):
    predictor = MBv3LatencyPredictor(demo_lut, calibrated=False)
    for arch in _archs_at(demo, 24, 20):
        expected = sum(demo_lut.entries[d.key]["median_ms"] for d in arch.layers())
        assert predictor.predict(arch) == pytest.approx(expected, rel=1e-12)
        assert sum(ms for _, ms in predictor.breakdown(arch)) == pytest.approx(expected, rel=1e-12)


def test_predict_many_equals_predict(demo_lut, demo):
    predictor = MBv3LatencyPredictor(demo_lut)
    archs = _archs_at(demo, 24, 50, seed=1)
    many = predictor.predict_many(archs)
    assert many.shape == (50,)
    assert np.allclose(many, [predictor.predict(a) for a in archs])
    assert predictor.predict_many([]).shape == (0,)


def test_calibration_is_applied(demo_lut, demo):
    demo_lut.calibration = {"coef": [0.5, 0.0, 0.01, 0.2], "model": "boundary"}
    predictor = MBv3LatencyPredictor(demo_lut)
    arch = _archs_at(demo, 24, 1)[0]
    raw = sum(demo_lut.entries[d.key]["median_ms"] for d in arch.layers())
    assert predictor.predict(arch) == pytest.approx(0.5 * raw + 0.01 * len(arch.layers()) + 0.2)
    assert Calibration().apply(np.array([[2.0, 9.0, 9.0, 1.0]])) == pytest.approx([2.0])


def test_missing_entries_fail_with_the_keys_and_the_fill_command(demo_lut_path, demo):
    lut = LUT.load(demo_lut_path)
    predictor = MBv3LatencyPredictor(lut)
    arch = _archs_at(demo, 32, 1)[0]  # the fixture LUT only holds 24 px
    with pytest.raises(MissingEntriesError) as e:
        predictor.predict(arch)
    msg = str(e.value)
    assert "no entry for" in msg and "conv:r32:i3:o8:k3:s2:hswish" in msg
    assert "hwnas profile --profiler torch-cpu --space demo --resolutions 32" in msg
    # and one missing block inside an otherwise complete resolution is caught too
    arch24 = _archs_at(demo, 24, 1)[0]
    gone = arch24.layers()[3].key
    del lut.entries[gone]
    with pytest.raises(MissingEntriesError, match=gone):
        MBv3LatencyPredictor(lut).predict_many([_archs_at(demo, 24, 1, seed=5)[0], arch24])


def test_latency_grows_with_the_network(demo_lut, demo):
    predictor = MBv3LatencyPredictor(demo_lut, calibrated=False)
    small = MBv3Arch(demo, 24, 1.0, *(lambda a: (a.kernels, a.expands))(demo.smallest()))
    big = MBv3Arch(demo, 24, 1.0, *(lambda a: (a.kernels, a.expands))(demo.largest()))
    assert predictor.predict(big) > 1.5 * predictor.predict(small)


def test_fastest_is_a_true_minimum(demo_lut, demo):
    from dataclasses import replace

    demo_lut.calibration = {"coef": [0.9, 0.05, 0.01, 0.1], "model": "boundary"}
    space = replace(demo, resolutions=(24,))
    predictor = MBv3LatencyPredictor(demo_lut, space)
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


def test_generic_layer_sum_agrees_with_the_dense_mbv3_tables(demo_lut, demo):
    """The space protocol's generic path (sum of the LUT entries of arch.layers(), then calibration) and
    mbv3's dense fast path are one model."""
    from hwnas.latency.predict import LayerSumPredictor, latency_predictor

    demo_lut.calibration = {"coef": [1.1, 0.3, 0.002, 0.01], "model": "boundary"}
    archs = _archs_at(demo, 24, 100, seed=3)
    dense, generic = latency_predictor(demo_lut, demo), LayerSumPredictor(demo_lut, demo)
    assert isinstance(dense, MBv3LatencyPredictor)
    assert np.allclose(dense.features_many(archs), generic.features_many(archs), rtol=0, atol=1e-9)
    assert np.allclose(dense.predict_many(archs), generic.predict_many(archs), rtol=0, atol=1e-9)
    assert dense.breakdown(archs[0]) == generic.breakdown(archs[0])
    assert generic.fill_command() == dense.fill_command()


def test_predict_genes_is_predict_many_without_the_archs(demo_lut, demo):
    """The search's fast path: one gather of per-block calibrated costs from the gene matrix; the same numbers
    as the calibrated features, out-of-bounds rows refused, a missing LUT entry named as predict_many names it."""
    from dataclasses import replace

    from hwnas.core.errors import InputError

    demo_lut.calibration = {"coef": [1.1, 0.3, 0.002, 0.01], "model": "boundary"}
    space = replace(demo, resolutions=(24,))
    predictor = MBv3LatencyPredictor(demo_lut, space)
    archs = [space.sample(random.Random(s)) for s in range(200)]
    G = space.gene_matrix(archs)
    many = predictor.predict_many(archs)
    assert np.allclose(predictor.predict_genes(G), many, rtol=1e-12, atol=0)
    assert np.allclose(many, predictor.calibration.apply(predictor.features_many(archs)), rtol=1e-12, atol=0)
    assert predictor.predict_genes(G[:0]).shape == (0,)
    bad = G[:2].copy()
    bad[1, 0] = space.gene_upper_bounds()[0] + 1
    with pytest.raises(InputError, match="outside the space's bounds"):
        predictor.predict_genes(bad)
    gone = archs[0].layers()[3].key
    del demo_lut.entries[gone]
    with pytest.raises(MissingEntriesError, match=gone):
        MBv3LatencyPredictor(demo_lut, space).predict_genes(G)
    predictor.calibration = Calibration((2.0, 0.0, 0.0, 1.0), "set later")
    assert np.allclose(predictor.predict_many(archs[1:]), 2.0 * predictor.features_many(archs[1:])[:, 0] + 1.0,
                       rtol=1e-12, atol=0)


def test_a_batch_mixing_equal_spaces_with_other_choice_lists_is_priced_arch_by_arch():
    """Genes index each arch's own space: archs of a copy restricted to other resolutions, anywhere in a
    batch (not only first), are priced as the archs they are (mbv3 dense path and cell fast path)."""
    from dataclasses import replace
    from pathlib import Path

    from hwnas.latency.predict import latency_predictor

    luts = Path(__file__).resolve().parents[1] / "luts"
    for name, resolutions in (("demo", None), ("cell-demo", (24, 28))):
        lut = LUT.load(luts / f"amd-epyc-2c_ort-cpu_{name}.json")
        space = lut.search_space()
        mine = space if resolutions is None else replace(space, resolutions=resolutions)
        pred = latency_predictor(lut, mine)
        top = replace(space, resolutions=(max(space.resolutions),))  # its gene 0 = 0 is another resolution in mine
        rng = random.Random(0)
        theirs = [top.sample(rng) for _ in range(6)]
        ours = [mine.arch_from_dict(a.to_dict()) for a in theirs]
        assert theirs[0].genes()[0] == 0 != ours[0].genes()[0]
        alone = [pred.predict(a) for a in ours]
        mixed = pred.predict_many(ours[:3] + theirs)
        assert mixed[3:].tolist() == pytest.approx(alone, rel=1e-12), name


@pytest.mark.parametrize("field", ["entries", "calibration"])
def test_a_prediction_that_overflows_is_an_error_naming_the_file_and_field(field, tmp_path):
    """Issue 47: numbers that pass a finite check (1e308) but whose sum is inf gave `predicted inf ms`, exit 0,
    and a search blamed coverage. LUT.load refuses them now; a LUT changed in memory (no load) is caught at the
    prediction, on every path (dense fast path, gene rows, generic layer sum), naming the file and the field."""
    from hwnas.latency.lut import LUTError
    from hwnas.latency.predict import LayerSumPredictor

    from conftest import ROOT

    path = tmp_path / "lut.json"
    path.write_bytes((ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json").read_bytes())
    lut = LUT.load(path)
    if field == "entries":
        for e in lut.entries.values():
            e["median_ms"] = 1e308
        said = "its 'entries' (median_ms)"
    else:
        lut.calibration = {**lut.calibration, "coef": [1e308, 0.0, 1e308, 0.0]}
        said = "its field 'calibration' (coef)"
    space = lut.search_space()
    arch = space.sample(random.Random(0))
    for predictor in (MBv3LatencyPredictor(lut), LayerSumPredictor(lut)):
        with pytest.raises(LUTError) as e:
            predictor.predict(arch)
        assert str(e.value).startswith(f"{path}: the predicted latency") and said in str(e.value), str(e.value)
        assert not isinstance(e.value, MissingEntriesError)
    with pytest.raises(LUTError, match="not a finite number"):
        MBv3LatencyPredictor(lut).predict_genes(np.array([arch.genes()]))
