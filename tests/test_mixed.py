"""The mixed (macro + micro) space kind (hwnas.spaces.mixed) and its fast predictor."""
import json
import random

import numpy as np
import pytest
import torch

from hwnas.latency.lut import LUT
from hwnas.latency.predict import LayerSumPredictor, latency_predictor
from hwnas.spaces.mixed import MixedArch, MixedSpace
from hwnas.spaces.base import ArchError, SpaceError, get_space, list_spaces


@pytest.fixture(scope="module")
def mixed():
    return get_space("mixed-demo")


def test_shipped_mixed_space_names_its_cell(mixed):
    assert "mixed-demo" in list_spaces() and isinstance(mixed, MixedSpace)
    assert mixed.micro.name == "cell-demo" and len(mixed.edges) == 6 and mixed.max_stages == 3


@pytest.mark.parametrize("change, message", [
    ({"cell": "demo"}, "must name a space of kind 'cell'"),
    ({"cell": "nope"}, "field 'cell': unknown space 'nope'"),
    ({"resolutions": [30]}, "multiples of 4"),
    ({"stage_counts": [4]}, "disagree"),
    ({"depths": [0]}, "cell counts 1..20"),
])
def test_space_file_errors(mixed, change, message):
    with pytest.raises(SpaceError, match=message):
        MixedSpace.from_dict({**mixed.to_dict(), **change}, "m.json")


def test_variation_is_valid_repaired_and_listed(mixed):
    keys = {d.key for d in mixed.all_layers()}
    rng = random.Random(0)
    for _ in range(300):
        a = mixed.sample(rng)
        for x in (a, a.mutate(rng, 0.4), a.crossover(mixed.sample(rng), rng)):
            x.validate()  # a cell with no path is repaired, never returned
            assert {d.key for d in x.layers()} <= keys
            assert mixed.from_genes(x.genes()).id == x.id == mixed.arch_from_dict(x.to_dict()).id
    broken = MixedArch(mixed, 28, ((8, 1), (16, 1)), ("none",) * 6)
    with pytest.raises(ArchError, match="no path of the cell's edges reaches its output"):
        broken.validate()
    assert broken.canonical().ops == ("none", "none", "none", "skip", "none", "none")


def test_model_matches_its_descriptors(mixed):
    for a in (mixed.largest(), mixed.smallest(), mixed.sample(5)):
        m = a.build()
        assert sum(p.numel() for p in m.parameters()) == sum(d.params for d in a.layers())
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.fixture(scope="module")
def mixed_lut(mixed, tmp_path_factory):
    """A real quick ort-cpu LUT of mixed-demo (38 blocks), calibrated on 6 networks."""
    from hwnas.measuring.profiling import build_lut
    from hwnas.profilers.base import TimingPolicy

    out = tmp_path_factory.mktemp("mixed") / "lut.json"
    build_lut("ort-cpu", mixed, out, profiler_options={"policy": TimingPolicy.quick()}, calibrate=True,
              calib_archs=6, progress=False, command="pytest", processes=0)
    return out


def test_fast_predictor_agrees_and_finds_the_fastest(mixed, mixed_lut):
    lut = LUT.load(mixed_lut)
    fast, generic = latency_predictor(lut), LayerSumPredictor(lut)
    assert type(fast).__name__ == "MixedLatencyPredictor"
    archs = mixed.sample_distinct(400, random.Random(2))
    assert np.allclose(fast.predict_many(archs), generic.predict_many(archs), rtol=0, atol=1e-9)
    best, ms = fast.fastest()
    assert ms == pytest.approx(generic.predict(best)) and ms <= generic.predict_many(archs).min() + 1e-12


def test_search_a_mixed_space(mixed_lut, tmp_path):
    from hwnas.app.cli import main

    assert main(["search", "--lut", str(mixed_lut), "--population", "6", "--generations", "2", "--seed", "0",
                 "--out", str(tmp_path / "run")]) == 0
    front = json.loads((tmp_path / "run" / "front.json").read_text())["front"]
    assert front and {"stages", "ops"} <= set(front[0]["arch"])
