"""The DARTS cell space kind (hwnas.spaces.darts), its block types and its fast predictor."""
import json
import random

import numpy as np
import pytest
import torch

from hwnas.latency.lut import LUT
from hwnas.latency.predict import LayerSumPredictor, latency_predictor
from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.darts import DartsSpace
from hwnas.spaces.base import ArchError, SpaceError, get_space, list_spaces

# DARTS's published second-order genotype (DARTS_V2 in its genotypes.py)
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


@pytest.fixture(scope="module")
def demo_darts():
    return get_space("darts-demo")


def test_shipped_darts_spaces_and_the_published_genotype():
    assert {"darts", "darts-demo"} <= set(list_spaces())
    sp = get_space("darts")
    assert isinstance(sp, DartsSpace) and sp.reductions == (2, 5) and sp.size() > 10**18
    v2 = sp.arch_from_text(DARTS_V2)
    assert v2.normal[4:6] == (("skip_connect", 0), ("sep_conv_3x3", 1))  # each node's pair in input order
    assert sp.arch_from_text(v2.genotype).id == v2.id
    assert v2.build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ArchError, match="not a DARTS genotype"):
        sp.arch_from_text("Genotype(normal=[('sep_conv_3x3', 0)")
    with pytest.raises(ArchError, match="normal_concat must be range"):
        sp.arch_from_text(DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"))


@pytest.mark.parametrize("change, message", [
    ({"ops": ["none", "sep_conv_3x3"]}, "'none' is the relaxation's"),
    ({"cells": 2}, "'cells' must be 3..40"),
    ({"nodes": 0}, "'nodes' must be 1..8"),
    ({"resolutions": [4]}, "resolutions"),
])
def test_space_file_errors(demo_darts, change, message):
    with pytest.raises(SpaceError, match=message):
        DartsSpace.from_dict({**demo_darts.to_dict(), **change}, "d.json")


def test_variation_is_valid_and_every_block_is_listed(demo_darts):
    keys = {d.key for d in demo_darts.all_layers()}
    rng = random.Random(0)
    for _ in range(200):
        a = demo_darts.sample(rng)
        for x in (a, a.mutate(rng, 0.3), a.crossover(demo_darts.sample(rng), rng)):
            x.validate()
            assert {d.key for d in x.layers()} <= keys
            assert demo_darts.from_genes(x.genes()).id == x.id == demo_darts.arch_from_dict(x.to_dict()).id


def test_genotype_errors_name_the_node(demo_darts):
    d = demo_darts.sample(0).to_dict()
    bad = [list(p) for p in d["normal"]]
    bad[2][1] = bad[3][1]  # node 1 takes the same input twice
    with pytest.raises(ArchError, match="normal node 1 takes inputs"):
        demo_darts.arch_from_dict({**d, "normal": bad})
    with pytest.raises(ArchError, match="op 'conv_7x1_1x7' is not allowed"):
        demo_darts.arch_from_dict({**d, "reduce": [["conv_7x1_1x7", 0]] + d["reduce"][1:]})


def test_model_matches_its_descriptors(demo_darts):
    for a in (demo_darts.largest(), demo_darts.smallest(), demo_darts.sample(4)):
        m = a.build()
        assert sum(p.numel() for p in m.parameters()) == sum(d.params for d in a.layers())
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("desc", [
    LayerDesc("sepconv", 16, 16, 14, kernel=5, stride=2), LayerDesc("dilconv", 16, 16, 7, kernel=3),
    LayerDesc("maxpool", 8, 8, 7, kernel=3, stride=2, act="none"), LayerDesc("factreduce", 24, 16, 7, stride=2),
    LayerDesc("gaphead", 32, 10, 4)])
def test_darts_blocks(desc):
    assert LayerDesc.from_key(desc.key) == desc
    m = desc.build()
    assert sum(p.numel() for p in m.parameters()) == desc.params
    assert tuple(m(torch.randn(desc.input_shape)).shape) == desc.output_shape


@pytest.fixture(scope="module")
def darts_lut(demo_darts, tmp_path_factory):
    """A real quick ort-cpu LUT of darts-demo (48 blocks), calibrated on 6 networks."""
    from hwnas.measuring.profiling import build_lut
    from hwnas.profilers.base import TimingPolicy

    out = tmp_path_factory.mktemp("darts") / "lut.json"
    build_lut("ort-cpu", demo_darts, out, profiler_options={"policy": TimingPolicy.quick()}, calibrate=True,
              calib_archs=6, progress=False, command="pytest", processes=0)
    return out


def test_fast_predictor_agrees_with_the_layer_sum_and_finds_the_fastest(demo_darts, darts_lut):
    lut = LUT.load(darts_lut)
    fast, generic = latency_predictor(lut), LayerSumPredictor(lut)
    assert type(fast).__name__ == "DartsLatencyPredictor"
    archs = demo_darts.sample_distinct(300, random.Random(1))
    assert np.allclose(fast.predict_many(archs), generic.predict_many(archs), rtol=0, atol=1e-9)
    best, ms = fast.fastest()
    assert ms == pytest.approx(generic.predict(best)) and ms <= generic.predict_many(archs).min() + 1e-12


def test_search_and_score_a_darts_space(darts_lut, tmp_path, capsys):
    from hwnas.app.cli import main

    genotypes = tmp_path / "g.txt"
    genotypes.write_text(get_space("darts-demo").sample(3).genotype + "\n" + get_space("darts-demo").sample(4).genotype)
    assert main(["score", "--space", "darts-demo", "--archs", str(genotypes), "--json", str(tmp_path / "s.json")]) == 0
    assert len(json.loads((tmp_path / "s.json").read_text())["results"]) == 2
    assert main(["search", "--lut", str(darts_lut), "--strategy", "evolution", "--population", "6",
                 "--generations", "2", "--seed", "0", "--out", str(tmp_path / "run")]) == 0
    front = json.loads((tmp_path / "run" / "front.json").read_text())["front"]
    assert front and "normal" in front[0]["arch"]
