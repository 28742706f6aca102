"""Compound scaling priced by the LUT (hwnas.latency.compound, ``hwnas scale``)."""
import json

import pytest

from hwnas.app.cli import main
from hwnas.latency.compound import ScalingError, compound_scale, grid
from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.spaces.network import NetworkArch, Stage


def test_the_grid_keeps_the_flops_rule():
    g = grid()
    assert (1.2, 1.1, 1.15) in g and all(abs(a * b * b * c * c - 2) <= 0.1 for a, b, c in g)


def test_scale_grows_to_the_largest_step_under_the_budget(my_lut, tmp_path, capsys):
    lut = LUT.load(my_lut / "lut.json")
    sp = lut.search_space()
    predictor = latency_predictor(lut)
    base = NetworkArch(sp, 16, (Stage("conv", 1, 8, 3, 2, "sequential"), Stage("dwsep", 1, 16, 3, 2, "sequential")))
    base_ms = predictor.predict(base)
    big = base.scaled(10, 10, 10)
    assert big.stages == (Stage("conv", 2, 16, 3, 2, "sequential"), Stage("dwsep", 2, 24, 3, 2, "sequential"))
    steps = []  # the distinct archs along (1.2, 1.1, 1.15), phi = 0.25, 0.5, ...
    for i in range(1, 33):
        a = base.scaled(*(c ** (i / 4) for c in (1.2, 1.1, 1.15)))
        if a.id != (steps[-1] if steps else base).id:
            steps.append(a)
    assert len(steps) >= 2
    budget = max(base_ms, predictor.predict(steps[0])) * 1.0001  # the first step fits
    r = compound_scale(predictor, base, budget, [(1.2, 1.1, 1.15)])
    assert r.pick.predicted_ms <= budget and r.pick.phi > 0 and r.pick.arch.id != base.id
    assert predictor.predict(r.pick.arch) == pytest.approx(r.pick.predicted_ms)
    # one step further along the same coefficients does not fit, or the space has nothing larger
    nxt = base.scaled(*(c ** (r.pick.phi + 0.25) for c in (1.2, 1.1, 1.15)))
    assert nxt.id == r.pick.arch.id or predictor.predict(nxt) > budget or r.pick.saturated
    with pytest.raises(ScalingError, match="over the budget"):
        compound_scale(predictor, big, base_ms)

    (tmp_path / "base.json").write_text(base.to_json())
    out = tmp_path / "scaled.json"
    assert main(["scale", "--lut", str(my_lut / "lut.json"), "--arch", str(tmp_path / "base.json"),
                 "--budget-ms", str(budget), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "<- pick" in text and "a*b^2*g^2" in text
    scaled = sp.arch_from_dict(json.loads(out.read_text()))
    assert predictor.predict(scaled) <= budget
    assert main(["scale", "--lut", str(my_lut / "lut.json"), "--arch", str(tmp_path / "base.json"),
                 "--budget-ms", str(budget), "--alpha-beta-gamma", "1.2,x", "--out", str(out)]) == 2


def test_mbv3_scales_on_its_shipped_lut():
    """The MobileNetV3 kind scales too: depth per stage, width multiplier and resolution, snapped to the
    space's choices, priced by the shipped LUT."""
    from conftest import ROOT

    lut = LUT.load(ROOT / "luts" / "amd-epyc-2c_ort-cpu_mbv3.json")
    sp = lut.search_space()
    predictor = latency_predictor(lut)
    base = sp.smallest()
    grown = base.scaled(2.0, 1.0, 1.5)
    grown.validate()
    assert all(d >= b for d, b in zip(grown.depths, base.depths)) and grown.resolution > base.resolution
    budget = predictor.predict(base) * 1.6
    r = compound_scale(predictor, base, budget, [(1.2, 1.1, 1.15)])
    assert base.id != r.pick.arch.id and r.pick.predicted_ms <= budget
