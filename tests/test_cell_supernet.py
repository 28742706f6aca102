import random

import pytest
import torch

from conftest import cli_here
from hwnas.spaces.cells import CellArch, CellNetwork
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.cell_supernet import CellSupernet
from hwnas.evaluate.data import load_data
from hwnas.evaluate.mbv3_supernet import MBv3Supernet
from hwnas.evaluate.supernet import (CheckpointError, SupernetConfig, build_supernet, evaluate_subnet, load_supernet,
                                     read_checkpoint, recalibrate_bn, train_supernet)
from hwnas.spaces.base import get_space

DATA, LIMIT = "fashion-small", 20  # real Fashion-MNIST images (embedded), 20 per class: a few steps an epoch


@pytest.fixture(scope="module")
def cells():
    return get_space("cell-demo")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cells):
    """A cell supernet trained for one epoch on 170 real images: (path, config, report)."""
    out = tmp_path_factory.mktemp("cellsn") / "cell.pt"
    cfg = SupernetConfig(data=DATA, data_limit=LIMIT, epochs=1, batch_size=32, random_subnets=1)
    return out, cfg, train_supernet(cells, out, cfg, device="cpu", progress=False)


def test_supernet_of_a_cell_space_is_the_cell_supernet(cells):
    net = build_supernet(cells)
    assert isinstance(net, CellSupernet) and net.width is None
    with pytest.raises(EvaluatorError, match="no width multiplier"):
        build_supernet(cells, 1.0)
    # every edge holds every op but none; the largest arch's network is the supernet minus the other ops
    assert all(set(c) == {"skip", "conv1x1", "conv3x3", "avgpool3x3"} for c in net.body[2].choices)
    big = net.extract(cells.largest())
    assert sum(p.numel() for p in big.parameters()) == sum(p.numel() for p in CellNetwork(cells.largest()).parameters())


ARCHS = [
    ("conv3x3", "none", "conv1x1", "avgpool3x3", "conv3x3", "conv3x3"),
    ("skip", "avgpool3x3", "none", "none", "skip", "avgpool3x3"),      # skip and pool only: no edge weights
    ("conv3x3", "skip", "conv1x1", "none", "none", "none"),            # disconnected: zeros out of every cell
    ("conv3x3", "skip", "none", "conv1x1", "none", "skip"),            # a dead edge (0->1 leads nowhere)
    ("none",) * 6,
]


def test_extract_equals_the_supernet_forward(cells):
    torch.manual_seed(0)
    net = build_supernet(cells)
    splits = load_data(DATA, 0, limit=LIMIT)
    x = splits.tensors("val", 28, 3)[0][:32]
    archs = [CellArch(cells, 28, ops) for ops in ARCHS] + [cells.sample(s) for s in range(4)]
    for arch in archs:
        recalibrate_bn(net, lambda t: net(t, arch), splits, arch.resolution, 3, batches=2)
        net.eval()
        sub = net.extract(arch).eval()
        assert isinstance(sub, CellNetwork) and not sub.training
        with torch.no_grad():
            ours, theirs = net(x, arch), sub(x)
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=0), arch.ops
        if not arch.connected:  # every cell gives zeros: the logits do not depend on the image
            assert torch.allclose(ours, ours[:1].expand_as(ours), atol=1e-5)
    # archs share the weights of the ops they pick on the same edge
    first = [dict(zip([(j, i) for j, i, _ in n.body[2].edges], n.body[2].ops))
             for n in (net.extract(archs[0]), net.extract(CellArch(cells, 28, ("conv3x3",) * 6)))]
    assert torch.equal(first[0][(1, 0)][1].weight, first[1][(1, 0)][1].weight)  # edge 0->1: conv3x3 in both


def test_connected_sampling_draws_only_connected_archs(cells):
    net = build_supernet(cells)
    assert all(a.connected for a in net.students(random.Random(0), 50, "connected"))
    assert not all(a.connected for a in net.students(random.Random(0), 200, "uniform"))
    with pytest.raises(EvaluatorError, match="sampling must be one of"):
        net.students(random.Random(0), 1, "greedy")


def test_fair_sampling_trains_every_op_of_every_edge_once_a_step(cells):
    """FairNAS's strict fairness: one student per op, and on every edge each op in exactly one student."""
    net = build_supernet(cells)
    for seed in range(20):
        students = net.students(random.Random(seed), 2, "fair")  # n is ignored: one student per op
        assert len(students) == len(cells.ops)
        for e in range(len(cells.edges)):
            assert sorted(a.ops[e] for a in students) == sorted(cells.ops)
        assert all(a.resolution in cells.resolutions for a in students)
    assert net.students(random.Random(3), 2, "fair") == net.students(random.Random(3), 9, "fair")  # seeded
    assert net.students(random.Random(3), 2, "fair") != net.students(random.Random(4), 2, "fair")
    # over many steps every edge sees every op in every student position (the permutations are random)
    seen = {(k, a.ops[0]) for s in range(50) for k, a in enumerate(net.students(random.Random(s), 0, "fair"))}
    assert len(seen) == len(cells.ops) ** 2


def test_fair_training_is_deterministic_and_cell_only(tmp_path, cells, mbv3):
    cfg = SupernetConfig(data=DATA, data_limit=10, epochs=1, batch_size=32, sampling="fair", distill=False)
    a = train_supernet(cells, tmp_path / "a.pt", cfg, device="cpu", progress=False)
    b = train_supernet(cells, tmp_path / "b.pt", cfg, device="cpu", progress=False)
    assert a.history[0]["loss"] == b.history[0]["loss"] > 0
    sa, sb = read_checkpoint(tmp_path / "a.pt")["state"], read_checkpoint(tmp_path / "b.pt")["state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert read_checkpoint(tmp_path / "a.pt")["config"]["sampling"] == "fair"
    with pytest.raises(CheckpointError, match="sampling fair is for cell spaces"):
        train_supernet(mbv3.with_resolutions(mbv3.resolutions, num_classes=10), tmp_path / "m.pt", cfg, device="cpu",
                       progress=False)
    with pytest.raises(CheckpointError, match="sampling must be one of"):
        SupernetConfig(sampling="greedy")


def test_training_saves_a_cell_checkpoint_that_loads(trained, cells):
    out, cfg, report = trained
    assert report.epochs_done == 1 and report.history[0]["loss"] > 0
    blob = read_checkpoint(out)
    assert blob["space"] == cells.to_dict() and blob["width"] is None and blob["config"]["sampling"] == "uniform"
    net, _ = load_supernet(out)
    assert isinstance(net, CellSupernet) and not net.training
    acc = evaluate_subnet(net, cells.largest(), load_data(DATA, 0, limit=LIMIT))
    assert 0 <= acc <= 100
    again = train_supernet(cells, out, cfg, device="cpu", progress=False, resume=True)  # done: nothing to train
    assert again.resumed_from == 1 and again.epochs_done == 1


def test_evaluator_scores_one_per_arch_and_refuses_other_spaces(trained, cells, mbv3):
    out, _, _ = trained
    ev = create_evaluator("supernet", checkpoint=str(out))
    archs = [CellArch(cells, 28, ops) for ops in ARCHS[:3]]
    scores = ev.evaluate(archs)
    assert len(scores) == 3 and all(0 <= s <= 100 for s in scores)
    assert ev.evaluate(archs) == scores  # seeded BN recalibration: the same scores again
    with pytest.raises(CheckpointError, match="differs from the supernet's space"):
        ev.evaluate([mbv3.sample(0)])
    with pytest.raises(CheckpointError, match="differs from the supernet's space"):
        MBv3Supernet(mbv3).check(cells.sample(0))


def test_cli_trains_a_cell_supernet(tmp_path):
    out = tmp_path / "sn.pt"
    r = cli_here("supernet", "--space", "cell-demo", "--data", DATA, "--data-limit", "10", "--epochs", "1",
                 "--batch-size", "32", "--random-subnets", "1", "--sampling", "connected", "--no-distill",
                 "--compute", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "largest" in r.stdout
    blob = read_checkpoint(out)
    assert blob["config"]["sampling"] == "connected" and blob["config"]["distill"] is False


def test_cli_trains_a_cell_space_fair_and_mbv3_uniform_by_default(tmp_path):
    for space, expected in (("cell-demo", "fair"), ("demo", "uniform")):
        out = tmp_path / f"{space}.pt"
        r = cli_here("supernet", "--space", space, "--data", DATA, "--data-limit", "5", "--epochs", "1",
                     "--batch-size", "32", "--compute", "cpu", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert read_checkpoint(out)["config"]["sampling"] == expected


def test_a_cell_search_finalizes_with_parity_ort_and_a_measured_verdict(trained, tmp_path):
    """Issue 15's whole pipeline on the cell space: search with the cell supernet under a budget from the
    shipped cell LUT, then finalize: ONNX parity, .ort, measured latency against the prediction."""
    from pathlib import Path

    from hwnas.finalize import finalize
    from hwnas.search import Constraints, run_search

    lut = Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json"
    run = tmp_path / "run"
    run_search(lut, run, evaluator="supernet", evaluator_options={"checkpoint": str(trained[0])}, population=4,
               generations=1, seed=0, constraints=Constraints(budget_ms=0.2), progress=False)
    report = finalize(run, tmp_path / "final", processes=0, command="pytest", log=lambda s: None)
    assert report.report["parity"]["top1_agree"] == report.report["parity"]["images"] and report.report["parity"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "final" / "model.onnx").is_file() and (tmp_path / "final" / "model.ort").is_file()
    lat = report.report["latency"]
    assert lat["measured"]["median_ms"] > 0 and lat["predicted_ms"] > 0 and lat["verdict"] in ("PASS", "FAIL", "UNCERTAIN")
    assert "cell edge ops" in (tmp_path / "final" / "report.md").read_text()
