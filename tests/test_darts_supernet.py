"""The DARTS kind's weight-sharing supernet (hwnas/evaluate/darts_supernet.py): inherited weights, DARTS's
relaxation and derivation, and the differentiable strategy on the darts-demo space."""
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate.darts_supernet import DartsSupernet
from hwnas.evaluate.supernet import CheckpointError, SupernetConfig, build_supernet, train_supernet
from hwnas.spaces.base import get_space
from hwnas.spaces.darts import CELL_TYPES, DartsNetwork

LUT_PATH = Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-avx512-2c_ort-cpu_darts-demo.json"


@pytest.fixture(scope="module")
def space():
    return get_space("darts-demo")


@pytest.fixture(scope="module")
def net(space):
    """A supernet with random BN affine parameters (trained ones are not 1 and 0), in train mode: batch
    statistics (at initialisation, running ones shrink every output to ~0 and any comparison passes)."""
    torch.manual_seed(0)
    n = build_supernet(space).train()
    with torch.no_grad():
        for m in n.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.5)
    return n


def _archs(space, n=3):
    rng = random.Random(0)
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]


def _one_hot(net, arch):
    """Edge weights at a genotype: its edges on their ops, every other edge on none (the last option)."""
    sp, genes = net.space, arch.genes()
    out = {}
    for k, (t, i, j) in enumerate(net._edges()):
        g = 1 + 3 * (t * sp.nodes + i)
        a, b = sp.pairs(i)[genes[g]]
        c = genes[g + 1] if j == a else genes[g + 2] if j == b else len(sp.ops)
        out[k] = torch.nn.functional.one_hot(torch.tensor(c), len(sp.ops) + 1).float()
    return out


def test_the_kind_builds_its_supernet_and_refuses_what_it_cannot_hold(space):
    net = build_supernet(space)
    assert isinstance(net, DartsSupernet) and net.width is None and net.fair_sampling
    with pytest.raises(EvaluatorError, match="no width multiplier"):
        build_supernet(space, 1.0)
    with pytest.raises(EvaluatorError, match="takes a darts space"):
        DartsSupernet(get_space("cell-demo"))
    # every node holds every op on every earlier node: DARTS's search cell
    cell = net.cells[0]
    assert [len(node) for node in cell.edges] == [i + 2 for i in range(space.nodes)]
    assert all(list(choice) == list(space.ops) for node in cell.edges for choice in node)
    wider = get_space("darts-demo").__class__.from_dict({**space.to_dict(), "name": "wider", "channels": 12})
    with pytest.raises(CheckpointError, match="differs from the supernet's space 'darts-demo' in channels"):
        net.check(wider.largest())
    with pytest.raises(CheckpointError, match="differs"):
        net.check(get_space("cell-demo").largest())


def test_inherited_weights_give_the_standalone_network_its_outputs(space, net):
    """The supernet's single path and ``arch.build()`` with the copied weights compute the same logits, in
    training mode (batch statistics) and in eval mode (the copied running statistics)."""
    x = torch.randn(4, space.in_channels, 16, 16)  # the weights take any input size; 16 px is quicker
    for arch in _archs(space):
        model = net.extract(arch)
        assert isinstance(model, DartsNetwork)
        assert set(model.state_dict()) == set(arch.build().state_dict())
        with torch.no_grad():
            single = net(x, arch)
            assert single.std(0).max() > 1e-2, arch.summary  # the output depends on the input: the check can fail
            assert torch.equal(single, model(x)), arch.summary
            net.eval()
            try:
                assert torch.allclose(net(x, arch), net.extract(arch).eval()(x), atol=1e-6), arch.summary
            finally:
                net.train()


def test_relaxed_forward_at_a_corner_is_that_arch(space, net):
    x = torch.randn(3, space.in_channels, 16, 16)
    for arch in _archs(space):
        with torch.no_grad():
            assert torch.allclose(net(x, arch), net.relaxed_forward(x, _one_hot(net, arch)), atol=1e-5), arch.summary
    uniform = {k: torch.full((n,), 1.0 / n) for k, n in enumerate(net.relaxed_choices())}
    with torch.no_grad():
        assert not torch.allclose(net(x, arch), net.relaxed_forward(x, uniform), atol=1e-3)


def test_derive_keeps_each_nodes_two_strongest_edges_and_gives_a_valid_arch(space, net):
    for arch in _archs(space):  # a corner derives its own genotype; log_prob is 0 there
        w = [v.numpy() for v in _one_hot(net, arch).values()]
        assert net.derive(w, arch.genes()) == arch.genes()
        assert net.log_prob(arch.genes(), [np.log(np.clip(v, 1e-30, None)) for v in w]) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    none = len(space.ops)
    for _ in range(20):
        w = [rng.dirichlet(np.ones(none + 1)) for _ in net.relaxed_choices()]
        arch = space.from_genes(net.derive(w, space.largest().genes()))
        arch.validate()
        assert space.arch_from_dict(arch.to_dict()) == arch
        assert space.arch_from_text(arch.genotype) == arch
        for t, name in enumerate(CELL_TYPES):  # DARTS: the two edges whose best non-none op weighs most
            for i in range(space.nodes):
                edges = {j: w[k] for k, (tt, ii, j) in enumerate(net._edges()) if (tt, ii) == (t, i)}
                strength = {j: v[:none].max() for j, v in edges.items()}
                keep = sorted(sorted(strength, key=lambda j: -strength[j])[:2])
                pairs = getattr(arch, name)[2 * i:2 * i + 2]
                assert [j for _, j in pairs] == keep
                assert [op for op, _ in pairs] == [space.ops[int(edges[j][:none].argmax())] for j in keep]


def test_fair_students_run_every_op_once_at_every_node_and_position(space, net):
    students = net.students(random.Random(1), 2, "fair")
    assert len(students) == len(space.ops)
    for name in CELL_TYPES:
        for pos in range(2 * space.nodes):
            assert sorted(getattr(s, name)[pos][0] for s in students) == sorted(space.ops)
    assert len(net.students(random.Random(1), 3, "uniform")) == 3
    with pytest.raises(EvaluatorError, match="sampling must be one of"):
        net.students(random.Random(1), 1, "greedy")


@pytest.mark.slow
def test_a_differentiable_search_on_darts_demo_picks_archs_under_the_budget(space, tmp_path):
    """A supernet trained one epoch on 170 real Fashion-MNIST images, two generations of the differentiable
    strategy with the shipped LUT and a budget a third of the way from fastest to largest, and finalize of
    its pick (export, parity, a measurement)."""
    from hwnas.evaluate import create_evaluator
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.search import Constraints, run_search
    from hwnas.search.strategies import create_strategy

    ckpt = tmp_path / "darts-demo.pt"
    train_supernet(space, ckpt, SupernetConfig(data="fashion-small", data_limit=20, epochs=1, batch_size=32,
                                               random_subnets=1), device="cpu", progress=False)
    pred = latency_predictor(LUT.load(LUT_PATH), space)
    _, fastest = pred.fastest()
    budget = fastest + 0.35 * (pred.predict(space.largest()) - fastest)

    # the latency term: exact one pinned edge away from the mode
    s = create_strategy("differentiable", space, population=3, seed=0)
    s.bind(predictor=pred, evaluator=create_evaluator("supernet", checkpoint=str(ckpt)), constraints=Constraints())
    probs = [np.asarray(p) for p in np.random.default_rng(1).dirichlet(np.ones(len(space.ops) + 1),
                                                                      len(s._sizes))]
    base, delta = s._linearize(probs)
    assert base == pytest.approx(pred.predict(space.from_genes(s._derive(probs))), rel=1e-9)
    pinned = list(probs)
    pinned[4] = np.eye(len(space.ops) + 1)[len(space.ops)]  # an edge dropped: its node rewires
    assert base + float(delta[4][-1]) == pytest.approx(pred.predict(space.from_genes(s._derive(pinned))), rel=1e-6)

    result = run_search(LUT_PATH, tmp_path / "run", evaluator="supernet", evaluator_options={"checkpoint": str(ckpt)},
                        strategy="differentiable", strategy_options={"steps": 2, "batch_size": 8}, population=3,
                        generations=2, seed=0, constraints=Constraints(budget_ms=budget), progress=False)
    assert result.front
    for r in result.front:
        assert r.latency_ms <= budget
        arch = space.arch_from_dict(r.arch)
        assert arch.id == r.arch_id and space.arch_from_text(arch.genotype) == arch

    # the pick is a genotype like any other: finalize extracts, exports and measures it
    from hwnas.finalize.pipeline import finalize

    done = finalize(tmp_path / "run", tmp_path / "dist", processes=0, parity_images=16, log=lambda *a, **k: None)
    parity = done.report["parity"]
    assert done.report["arch_id"] == result.best.arch_id
    assert parity["top1_agree"] == parity["images"] and parity["max_abs_diff"] < 1e-4
    assert done.report["latency"]["measured"]["median_ms"] > 0
