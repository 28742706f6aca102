import json
import math
import random

import pytest
import torch

from hwnas.cells import CellArch, CellSpace
from hwnas.evaluate.data import load_data
from hwnas.evaluate.proxies import naswot
from hwnas.evaluate.train import train_arch
from hwnas.space import ArchError, SpaceError, get_space, list_spaces


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
    (tmp_path / "x.json").write_text(json.dumps({**demo, "kind": "darts"}))
    with pytest.raises(SpaceError, match="unknown space kind 'darts'"):
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
    with pytest.raises(SpaceError, match="no latency model yet"):
        cells.largest().layers()


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


def test_no_cell_supernet_yet_is_a_clear_error(cells):
    from hwnas.evaluate.base import EvaluatorError
    from hwnas.evaluate.supernet import Supernet

    with pytest.raises(EvaluatorError, match="no weight-sharing supernet yet"):
        Supernet(cells)


def test_cell_space_at_other_resolutions(cells):
    wide = cells.with_resolutions([32, 28])
    assert wide.name == "cell-demo-r28-32" and wide.resolutions == (28, 32) and isinstance(wide, CellSpace)
