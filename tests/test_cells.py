import json
import math
import random
from pathlib import Path

import pytest
import torch

from hwnas.spaces.cells import CellArch, CellSpace
from hwnas.evaluate.data import load_data
from hwnas.evaluate.proxies import naswot
from hwnas.evaluate.train import train_arch
from hwnas.spaces.base import ArchError, SpaceError, get_space, list_spaces


@pytest.fixture(scope="module")
def cells():
    return get_space("cell-demo")


def test_shipped_cell_space_is_read_by_kind(cells, tmp_path):
    assert "cell-demo" in list_spaces() and isinstance(cells, CellSpace) and len(cells.edges) == 6
    assert cells.edges[:3] == [(1, 0), (2, 0), (2, 1)]
    # an mbv3 file may say its kind; a file of an unknown kind is refused with the kinds there are
    demo = get_space("demo").to_dict()
    (tmp_path / "m.json").write_text(json.dumps({**demo, "kind": "mbv3"}))
    assert get_space(tmp_path / "m.json").digest == get_space("demo").digest
    (tmp_path / "x.json").write_text(json.dumps({**demo, "kind": "nasbench301"}))
    with pytest.raises(SpaceError, match="unknown space kind 'nasbench301'"):
        get_space(tmp_path / "x.json")


@pytest.mark.parametrize("change, message", [
    ({"ops": ["none", "sep_conv"]}, "distinct operations"),
    ({"nodes": 1}, "'nodes' must be 2..8"),
    ({"channels": []}, "one width"),
    ({"resolutions": [2]}, "resolutions"),
    ({"cells_per_stage": 0}, "cells_per_stage"),
    ({"colour": "red"}, "colour"),
])
def test_cell_space_errors(cells, change, message):
    with pytest.raises(SpaceError, match=message):
        CellSpace.from_dict({**cells.to_dict(), **change}, "cell.json")


def test_sampling_variation_and_genes_are_seeded_and_valid(cells):
    a = cells.sample_distinct(20, random.Random(1))
    assert [x.id for x in a] == [x.id for x in cells.sample_distinct(20, random.Random(1))]
    assert len({x.id for x in a}) == 20
    rng = random.Random(2)
    for x, y in zip(a, a[1:]):
        for child in (x.mutate(rng, 0.5), x.crossover(y, rng)):
            child.validate()
            assert set(child.ops) <= set(cells.ops)
        assert cells.from_genes(x.genes()) == x
        assert cells.arch_from_dict(json.loads(x.to_json())) == x
        assert sum(x.encode()) == 1 + len(cells.edges) and len(x.encode()) == cells.encoding_size
    assert all(g <= u for x in a for g, u in zip(x.genes(), cells.gene_upper_bounds()))


def test_arch_file_errors(cells):
    with pytest.raises(ArchError, match="7 ops given"):
        cells.arch_from_dict({"resolution": 28, "ops": ["skip"] * 7})
    with pytest.raises(ArchError, match="'maxpool' is not allowed"):
        cells.arch_from_dict({"resolution": 28, "ops": ["maxpool"] + ["skip"] * 5})
    with pytest.raises(ArchError, match="resolution 32"):
        cells.arch_from_dict({"resolution": 32, "ops": ["skip"] * 6})


def test_a_cell_with_no_path_outputs_zeros(cells):
    cut = CellArch(cells, 28, ("conv3x3", "none", "conv3x3", "none", "none", "none"))  # node 3 unreachable
    assert not cut.connected and cells.smallest().connected is False and cells.largest().connected
    net = cut.build().eval()
    with torch.no_grad():
        out = net(torch.randn(4, 3, 28, 28))
    assert torch.allclose(out, out[:1].expand_as(out))  # the input cannot reach the classifier
    # a 'none' edge holds no module; a conv3x3 edge is ReLU-conv-BN
    cell = net.body[2]
    assert len(cell.ops) == 2 and isinstance(cell.ops[0][1], torch.nn.Conv2d)


def test_cell_archs_train_and_score_with_the_shared_tools(cells, tiny_data):
    splits = load_data(tiny_data, 0)
    good = CellArch(cells, 28, ("conv3x3", "skip", "conv3x3", "none", "skip", "conv1x1"))
    r = train_arch(good, splits, max_epochs=1, patience=0, batch_size=32, device="cpu")
    assert 0 <= r.best_val_acc <= 100 and r.epochs_run == 1
    x = splits.inputs(splits.train.x[:16], 28, 3)
    assert math.isfinite(naswot(good, seed=0, batch=(x, None)))


def test_a_cell_space_has_its_own_supernet(cells):
    from hwnas.evaluate.cell_supernet import CellSupernet
    from hwnas.evaluate.supernet import build_supernet

    assert isinstance(build_supernet(cells), CellSupernet)  # tests/test_cell_supernet.py tests it


def test_cell_space_at_other_resolutions(cells):
    wide = cells.with_resolutions([32, 28])
    assert wide.name == "cell-demo-r28-32" and wide.resolutions == (28, 32) and isinstance(wide, CellSpace)


# -- latency: the LUT keys of a cell network ----------------------------------
def test_live_edges_and_the_blocks_priced(cells):
    # edges in gene order: (1,0) (2,0) (2,1) (3,0) (3,1) (3,2)
    arch = CellArch(cells, 28, ("conv3x3", "conv1x1", "none", "skip", "none", "none"))
    # node 2 is fed (by conv1x1) but leads nowhere: that edge is dead; (1,0) feeds node 1, which is dead too
    assert arch.live == [False, False, False, True, False, False]
    assert arch.connected
    keys = [d.key for d in arch.layers()]
    # stem, 2 reductions, head; every cell is one skip edge: free, no add
    assert keys == ["conv:r28:i3:o8:k3:s1:none", "resblock:r28:i8:o16:k3:s2:relu",
                    "resblock:r14:i16:o32:k3:s2:relu", "poolhead:r7:i32:o10:relu"]
    full = CellArch(cells, 28, ("conv3x3",) * 6)
    per_cell = [k for k in (d.key for d in full.layers()) if ":r28:" in k and k.startswith(("rcb", "add"))]
    assert per_cell.count("rcb:r28:i8:o8:k3:s1:relu") == 6 and per_cell.count("add:r28:i8:o8:none") == 3
    cut = CellArch(cells, 28, ("conv3x3", "none", "conv3x3", "none", "none", "none"))
    assert not any(cut.live) and cut.layers() == []  # no path: the output is a constant, priced at nothing
    # ... and computed without the input, equal to running the whole body (whose cells output zeros)
    net = cut.build().eval()
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        full = net.body(x)
        assert torch.allclose(net(x), full, atol=1e-6) and torch.allclose(full, full[:1].expand_as(full))


def test_the_network_runs_exactly_the_blocks_it_is_priced_for(cells):
    rng = random.Random(0)
    for arch in [cells.sample(rng) for _ in range(8)] + [cells.largest(), cells.smallest()]:
        net = arch.build()
        descs = arch.layers()
        # parameters: a dead edge keeps its module (weights stay where the supernet expects them) but is not run
        cells_in_net = [m for m in net.body if m.__class__.__name__ == "Cell"]
        live_params = sum(sum(p.numel() for p in op.parameters()) for c in cells_in_net
                          for op, live in zip(c.ops, c.live) if live)
        other = sum(p.numel() for m in net.body if m.__class__.__name__ != "Cell" for p in m.parameters())
        if arch.connected:
            assert live_params + other == sum(d.params for d in descs)
        # dead edges do not change the output: the same weights with them set to 'none' give the same logits
        pruned = CellArch(cells, arch.resolution, tuple(o if live else "none" for o, live in zip(arch.ops, arch.live)))
        torch.manual_seed(0)
        a = arch.build().eval()
        b = pruned.build().eval()
        state = b.state_dict()
        live = _live_state(a, arch)
        assert len(live) == len(state)
        for tensor, (_, src) in zip(state.values(), live):
            tensor.copy_(src)
        x = torch.randn(2, 3, 28, 28)
        with torch.no_grad():
            assert torch.allclose(a(x), b(x), atol=1e-6)


def _live_state(net, arch):
    """The state of ``net`` without the entries of dead edges, in order."""
    dead = set()
    for bi, m in enumerate(net.body):
        if m.__class__.__name__ == "Cell":
            for oi, live in enumerate(m.live):
                if not live:
                    dead.add(f"body.{bi}.ops.{oi}.")
    return [(k, v) for k, v in net.state_dict().items() if not any(k.startswith(d) for d in dead)]


def test_all_layers_hold_every_block_of_every_arch(cells):
    every = {d.key for d in cells.all_layers()}
    assert len(every) == 16
    for arch in cells.sample_distinct(300, 1):
        assert {d.key for d in arch.layers()} <= every
    with pytest.raises(SpaceError, match="resolutions \\[32\\] are not in space"):
        cells.all_layers([32])
    assert cells.size() == 5 ** 6 and len(list(cells.all_archs())) == cells.size()


def test_a_cell_lut_prices_cell_networks(cells, tmp_path, quick_policy):
    """A real (quick) torch-cpu LUT of the cell space: the generic predictor sums its entries."""
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import LayerSumPredictor, MissingEntriesError, covered_resolutions, latency_predictor
    from hwnas.measuring.profiling import build_lut

    out = tmp_path / "cell.json"
    build_lut("torch-cpu", cells, out, profiler_options={"policy": quick_policy}, calibrate=False, progress=False,
              command="pytest", processes=0)
    lut = LUT.load(out)
    assert isinstance(lut.search_space(), CellSpace) and len(lut.entries) == 16
    predictor = latency_predictor(lut)
    assert isinstance(predictor, LayerSumPredictor) and covered_resolutions(lut, cells) == (28,)
    archs = cells.sample_distinct(50, 2)
    for a, ms in zip(archs, predictor.predict_many(archs)):
        assert ms == pytest.approx(sum(lut.entries[d.key]["median_ms"] for d in a.layers()), rel=1e-12)
    fastest, ms = predictor.fastest()
    assert ms <= predictor.predict_many(archs).min() and ms == pytest.approx(predictor.predict(fastest))
    del lut.entries["add:r14:i16:o16:none"]
    with pytest.raises(MissingEntriesError, match="add:r14:i16:o16:none") as e:
        LayerSumPredictor(lut).predict(cells.largest())
    assert "--space cell-demo" in str(e.value)


def test_a_cell_space_is_searched_from_its_shipped_lut(tmp_path):
    """The search goes through the space protocol: the cell LUT's space is searched, archs are priced by
    the generic predictor, the budget holds, the same seed gives the same front."""
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.search import Constraints, run_search

    lut_path = Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json"
    predictor = latency_predictor(LUT.load(lut_path))
    budget = 0.12
    fronts = []
    for run in ("a", "b"):
        result = run_search(lut_path, tmp_path / run, evaluator="proxy:synflow", population=8, generations=2, seed=3,
                            constraints=Constraints(budget_ms=budget), progress=False)
        front = sorted((r.arch_id, round(r.latency_ms, 9)) for r in result.front)
        assert front and all(ms <= budget for _, ms in front)
        space = predictor.space
        for r in result.front:
            arch = space.arch_from_dict(r.arch)
            assert arch.id == r.arch_id and predictor.predict(arch) == pytest.approx(r.latency_ms)
            assert arch.canonical() is arch  # listed as the network, never as a dead-edge variant of it
        fronts.append(front)
    assert fronts[0] == fronts[1]


def test_archs_differing_only_on_dead_edges_are_one_network(cells):
    """Canonical form: dead edges become none; same blocks, same latency, same function."""
    import torch

    from hwnas.evaluate.supernet import build_supernet

    torch.manual_seed(0)
    net = build_supernet(cells).eval()
    rng = random.Random(0)
    seen = 0
    for _ in range(200):
        a = cells.sample(rng)
        c = a.canonical()
        assert c.canonical() is c and c.live == a.live
        assert [op for op, on in zip(c.ops, c.live) if not on] == ["none"] * (len(c.ops) - sum(c.live))
        if c is a:
            continue
        seen += 1
        assert c.id != a.id and c.layers() == a.layers()
        if seen <= 3:  # the same weights (one supernet's) compute the same outputs
            x = torch.randn(2, cells.in_channels, a.resolution, a.resolution)
            with torch.no_grad():
                assert torch.equal(net.extract(a)(x), net.extract(c)(x))
    assert seen > 20  # dead edges are common: the check ran


def test_the_cell_fast_path_is_the_layer_sum():
    """The dense cell predictor (gene matrices, vectorised live edges) and the generic layer sum are one
    model, on the shipped cell LUT with its calibration."""
    import numpy as np

    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import CellLatencyPredictor, LayerSumPredictor, latency_predictor

    lut = LUT.load(Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json")
    fast, slow = latency_predictor(lut), LayerSumPredictor(lut)
    assert isinstance(fast, CellLatencyPredictor)
    sp = fast.space
    archs = sp.sample_distinct(2000, 5) + [sp.smallest(), sp.largest(),
                                          CellArch(sp, 28, ("conv3x3", "conv1x1", "none", "skip", "none", "none"))]
    assert np.allclose(fast.features_many(archs), slow.features_many(archs), rtol=0, atol=1e-9)
    assert np.allclose(fast.predict_many(archs), slow.predict_many(archs), rtol=0, atol=1e-9)
    best, ms = fast.fastest()
    assert ms == pytest.approx(slow.predict(best)) and ms <= fast.predict_many(archs).min() + 1e-12


def test_a_constant_network_has_a_search_record_and_odd_sizes_are_refused(cells):
    """A search proposes cells with no path (the cheapest archs): their record is built; stage sizes the
    residual shortcut cannot halve are refused when the space is read."""
    from hwnas.search.records import SearchRecord

    cut = CellArch(cells, 28, ("none",) * 6)
    r = SearchRecord.of(cut, 0.004, 10.0)
    assert r.layers == 0 and r.memory_mb == 0 and r.params_m == 0
    with pytest.raises(SpaceError, match=r"\[30\] cannot be halved evenly"):
        CellSpace.from_dict({**cells.to_dict(), "resolutions": [30]})


def test_the_fast_path_agrees_on_a_two_node_cell_whose_lut_has_no_adds():
    """A 2-node cell has no node with two inputs, so its LUT holds no 'add' keys: both paths price it."""
    import numpy as np

    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import CellLatencyPredictor, LayerSumPredictor

    shipped = LUT.load(Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json")
    two = CellSpace.from_dict({**shipped.space, "name": "cell-2", "nodes": 2})
    keys = {d.key for d in two.all_layers()}
    assert not any(k.startswith("add") for k in keys)
    lut = LUT(profiler=shipped.profiler, settings=shipped.settings, fingerprint=shipped.fingerprint,
              space=two.to_dict(), entries={k: v for k, v in shipped.entries.items() if k in keys},
              calibration=shipped.calibration)
    archs = list(two.all_archs())
    fast, slow = CellLatencyPredictor(lut, two), LayerSumPredictor(lut, two)
    assert np.allclose(fast.predict_many(archs), slow.predict_many(archs), rtol=0, atol=1e-9)
    assert fast.fastest()[1] == pytest.approx(min(slow.predict_many(archs)))


def test_nb201_computes_every_non_none_edge_as_its_reference_code():
    """``dead_edges: computed`` (the shipped ``nb201``): an edge on no path to the output still runs and is
    priced, as in the networks NAS-Bench-201's latency benchmarks timed; the default (pruned) is unchanged,
    down to the digest its LUTs and arch ids carry."""
    nb, cell = get_space("nb201"), get_space("cell")
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|"
    a, b = nb.arch_from_text(text), cell.arch_from_text(text)
    assert [d.op for d in a.layers()].count("rcb") == 5 * 3 * 3  # conv3x3 twice and conv1x1 in 15 cells
    assert [d.op for d in b.layers()].count("rcb") == 0  # pruned: only the skip reaches the output
    assert a.canonical() is a and b.canonical().ops == ("none",) * 3 + ("skip", "none", "none")
    model = a.build()
    assert sum(p.numel() for p in model.parameters()) == sum(d.params for d in a.layers())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert get_space("cell-demo").digest == "d0224d01cd3e" and "dead_edges" not in cell.to_dict()
    with pytest.raises(SpaceError, match="'dead_edges' must be 'pruned'"):
        CellSpace.from_dict({**cell.to_dict(), "dead_edges": "maybe"}, "c.json")


def test_nb201_fast_predictor_agrees_with_the_layer_sum(tmp_path):
    import numpy as np

    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import LayerSumPredictor, latency_predictor
    from hwnas.measuring.profiling import build_lut
    from hwnas.profilers.base import TimingPolicy

    nb = get_space("nb201")
    build_lut("ort-cpu", nb, tmp_path / "lut.json", profiler_options={"policy": TimingPolicy.quick()},
              calibrate=False, progress=False, command="pytest", processes=0)
    lut = LUT.load(tmp_path / "lut.json")
    archs = nb.sample_distinct(300, random.Random(0))
    assert np.allclose(latency_predictor(lut).predict_many(archs), LayerSumPredictor(lut).predict_many(archs),
                       rtol=0, atol=1e-9)


def test_computed_zeros_stay_data_dependent_so_onnx_keeps_the_network(tmp_path):
    """NAS-Bench-201's ``none`` is ``x * 0``: a network of all-none cells still runs its stem, reductions and
    head on the input. Built with constant zeros instead, ONNX export and the runtime would fold it to a
    constant (measured at 3 µs where its LUT sum was 175 µs)."""
    import onnx

    a = get_space("nb201").arch_from_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    ops = [d.op for d in a.layers()]
    assert [o for o in ops if o not in ("add", "zero")] == ["conv", "resblock", "resblock", "poolhead"]
    assert ops.count("add") == 15 * 3  # every node sums all its inputs, none edges' x * 0 included
    assert ops.count("zero") == 15 * 3  # ... and x * 0 is a priced block, once per node none edges leave
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(a.build().eval(), (x,), str(tmp_path / "m.onnx"), opset_version=17, dynamo=False)
    graph = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert graph.count("Mul") == ops.count("zero")  # the exporter computes x * 0 once per source: as priced
    ops = graph
    for text in ("|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",   # sources 0 and 2
                 "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"):
        b = get_space("nb201").arch_from_text(text)
        torch.onnx.export(b.build().eval(), (x,), str(tmp_path / "b.onnx"), opset_version=17, dynamo=False)
        muls = [n.op_type for n in onnx.load(str(tmp_path / "b.onnx")).graph.node].count("Mul")
        assert muls == [d.op for d in b.layers()].count("zero") == 15 * 2
    assert ops.count("Conv") >= 5  # stem, two reduction blocks of two convs and a shortcut each
