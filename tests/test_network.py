"""The network-level space kind (hwnas.spaces.network) and its block types (hwnas.spaces.network_blocks)."""
import json
import random

import numpy as np
import pytest
import torch

from hwnas.app.cli import main
from hwnas.latency.lut import LUT
from hwnas.latency.predict import LayerSumPredictor, latency_predictor
from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.network import NetworkArch, NetworkSpace, Stage
from hwnas.spaces.base import ArchError, SpaceError, get_space, list_spaces


@pytest.fixture(scope="module")
def net():
    return get_space("network-demo")


def test_shipped_network_spaces_load_by_kind(net):
    assert {"network-demo", "network"} <= set(list_spaces())
    assert isinstance(net, NetworkSpace) and net.max_stages == 4
    big = get_space("network")
    assert big.resolutions == (224,) and "attention" in {t for ts in big.layer_types for t in ts}


@pytest.mark.parametrize("change, message", [
    ({"strides": [2, 3, 1, 2]}, "strides of 1 or 2"),
    ({"widths": [[16], [24]]}, "one choice list per stage position"),
    ({"layer_types": [["conv"], ["lstm"], ["mbconv"], ["mbconv"]]}, "distinct types from"),
    ({"stage_counts": [5]}, "stage counts 1..4"),
    ({"kernels": [4]}, "odd sizes"),
    ({"connections": ["skip"]}, "patterns from"),
    ({"attention_heads": 5}, "multiples of attention_heads 5"),
    ({"colour": "red"}, "colour"),
])
def test_space_file_errors_name_the_field(net, change, message):
    with pytest.raises(SpaceError, match=message):
        NetworkSpace.from_dict({**net.to_dict(), **change}, "net.json")


def test_every_variation_is_a_valid_network_whose_blocks_the_space_lists(net):
    """Sampling, mutation (genes and topology moves: layers added/removed, rewiring, stages) and crossover
    always give a valid arch whose blocks are among all_layers() (what a full LUT times)."""
    keys = {d.key for d in net.all_layers()}
    rng = random.Random(0)
    seen_moves = set()
    for _ in range(300):
        a = net.sample(rng)
        b = a.mutate(rng, prob=0.4)
        c = a.crossover(b, rng)
        for x in (a, b, c):
            x.validate()
            assert {d.key for d in x.layers()} <= keys
            assert net.from_genes(x.genes()).id == x.id == net.arch_from_dict(x.to_dict()).id
        seen_moves |= {("depth", sum(s.depth for s in a.stages) != sum(s.depth for s in b.stages)),
                       ("stages", len(a.stages) != len(b.stages)),
                       ("wiring", [s.connection for s in a.stages] != [s.connection for s in b.stages][:len(a.stages)])}
    assert {("depth", True), ("stages", True), ("wiring", True)} <= seen_moves


def test_connections_compile_to_layers_and_connections(net):
    def arch(conn, t="dwsep", depth=2):
        st = [Stage("conv", 1, 16, 3, 2, "sequential"), Stage(t, depth, 24, 3, 2, conn),
              Stage("mbconv", 1, 32, 3, 2, "sequential")]
        return NetworkArch(net, 28, tuple(st)).canonical()

    ops = lambda a: [n.desc.op for n in a.graph()]  # noqa: E731
    assert ops(arch("sequential")) == ["conv", "conv", "dwsep", "dwsep", "mbconv", "head"]
    assert ops(arch("residual")) == ["conv", "conv", "dwsep", "dwsep", "add", "mbconv", "head"]
    dense = arch("dense")
    assert ops(dense) == ["conv", "conv", "dwsep", "dwsep", "concat", "conv", "mbconv", "head"]
    g = dense.graph()
    assert g[4].inputs == (2, 3) and g[4].desc.cin == 48 and g[5].desc.cin == 48 and g[5].desc.cout == 24
    # a type with its own shortcut: residual is the same network as sequential, so the same arch
    assert arch("residual", "mbconv").id == arch("sequential", "mbconv").id
    assert arch("residual", "dwsep").id != arch("sequential", "dwsep").id


def test_model_parameters_and_shapes_match_the_descriptors(net):
    rng = random.Random(3)
    for a in [net.largest(), net.smallest()] + [net.sample(rng) for _ in range(6)]:
        model = a.build()
        assert sum(p.numel() for p in model.parameters()) == sum(d.params for d in a.layers())
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("desc", [
    LayerDesc("dwsep", 16, 32, 14, kernel=5, stride=2, act="relu"),
    LayerDesc("bottleneck", 32, 32, 7, kernel=3, mid=8, act="hswish"),
    LayerDesc("attention", 32, 48, 8, kernel=3, stride=2, mid=48, heads=4, act="hswish"),
    LayerDesc("concat", 48, 48, 7, act="none"),
])
def test_block_types_round_trip_their_keys_and_count_their_parameters(desc):
    assert LayerDesc.from_key(desc.key) == desc
    m = desc.build()
    assert sum(p.numel() for p in m.parameters()) == desc.params
    assert tuple(m(torch.randn(desc.input_shape)).shape) == desc.output_shape


def test_attention_exports_to_onnx_with_parity(tmp_path):
    import onnxruntime as ort

    d = LayerDesc("attention", 32, 32, 7, kernel=3, mid=32, heads=2, act="hswish")
    m = d.build().eval()
    x = torch.randn(d.input_shape)
    torch.onnx.export(m, (x,), str(tmp_path / "a.onnx"), opset_version=17, dynamo=False)
    y = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"]).run(None, {
        ort.InferenceSession(str(tmp_path / "a.onnx")).get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(y - m(x).detach().numpy()).max() < 1e-4


def test_unknown_block_type_names_the_registry():
    with pytest.raises(ValueError, match="unknown layer op 'lstm'.*hwnas.blocks"):
        LayerDesc("lstm", 8, 8, 4)


def test_arch_errors(net):
    a = net.sample(0).to_dict()
    with pytest.raises(ArchError, match=r"stages\[0\].type = 'lstm' is not allowed"):
        net.arch_from_dict({**a, "stages": [{**a["stages"][0], "type": "lstm"}] + a["stages"][1:]})
    with pytest.raises(ArchError, match="1 stages; this space allows"):
        net.arch_from_dict({**a, "stages": a["stages"][:1]})
    with pytest.raises(ArchError, match="arch is for another kind of space"):
        net.arch_from_dict({**a, "ops": ["skip"]})


def test_a_users_space_file_runs_sample_predict_search(my_lut, capsys):
    space_file, lut_file = my_lut / "my.json", my_lut / "lut.json"
    lut = LUT.load(lut_file)
    fast, generic = latency_predictor(lut), LayerSumPredictor(lut)
    archs = lut.search_space().sample_distinct(200, random.Random(0))
    assert np.allclose(fast.predict_many(archs), generic.predict_many(archs), rtol=0, atol=1e-9)
    best, ms = fast.fastest()
    assert ms <= min(generic.predict_many(archs)) + 1e-12
    assert main(["sample", "--space-file", str(space_file), "--seed", "2", "--out", str(my_lut / "a.json")]) == 0
    assert main(["predict", "--lut", str(lut_file), "--arch", str(my_lut / "a.json")]) == 0
    assert "predicted" in capsys.readouterr().out
    assert main(["search", "--lut", str(lut_file), "--budget-ms", str(round(ms * 1.5, 4)), "--population", "6",
                 "--generations", "2", "--seed", "0", "--out", str(my_lut / "run")]) == 0
    front = json.loads((my_lut / "run" / "front.json").read_text())["front"]
    assert front and all(r["latency_ms"] <= ms * 1.5 + 1e-9 for r in front)
    assert all(r["accuracy"] == r["accuracy"] for r in front)  # scored (the default evaluator, data-free)
