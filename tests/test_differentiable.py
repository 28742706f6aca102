"""The differentiable strategy (hwnas/search/differentiable.py) and the supernets' relaxed forward passes."""
import json
import random

import pytest
import torch

from hwnas.core.errors import SearchError
from hwnas.evaluate.supernet import build_supernet
from hwnas.latency.lut import LUT
from hwnas.latency.predict import latency_predictor
from hwnas.search import Constraints, run_search
from hwnas.search.strategies import create_strategy, list_strategies, strategy_options
from hwnas.spaces.base import get_space
from hwnas.search.store import RunStore


def _one_hot(net, genes):
    ub = net.space.gene_upper_bounds()
    return {g: torch.nn.functional.one_hot(torch.tensor(genes[g]), ub[g] + 1).float()
            for g in net.searchable_genes()}


def _expand_one_space():
    """The demo space with expand ratio 1 among the choices: that block runs no expand conv."""
    import dataclasses

    return dataclasses.replace(get_space("demo"), name="demo-e1", expands=(1, 2, 4))


@pytest.mark.parametrize("name", ["demo", "cell-demo", "mbv3", "demo-e1"])
def test_relaxed_forward_at_a_corner_is_that_arch(name):
    """One-hot weights: the masked largest blocks / mixed edges compute exactly the single path, so the
    relaxation is exact at its corners; mixed weights give something else. BatchNorm shifts are random
    (trained ones are not zero): a conv after a node nothing feeds must still add nothing, and an expand
    ratio of 1 must skip the expand conv as the single path does."""
    sp = _expand_one_space() if name == "demo-e1" else get_space(name)
    torch.manual_seed(0)
    net = build_supernet(sp).train()  # batch statistics: at initialisation, running ones shrink every output to ~0
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.5)
    rng = random.Random(0)
    x = torch.randn(3, 3, min(sp.resolutions), min(sp.resolutions))  # the weights take any input size
    fixed = net.largest().genes()
    archs = [sp.sample(rng).genes() for _ in range(6)]
    if name == "cell-demo":  # node 1 fed by nothing, a conv after it (dead in forward); node 2 too
        archs += [[0] + [sp.ops.index(o) for o in ops] for ops in (
            ("none", "conv3x3", "conv3x3", "none", "conv1x1", "conv3x3"),
            ("none", "none", "conv3x3", "conv3x3", "none", "conv3x3"),
            ("none", "skip", "conv1x1", "conv3x3", "none", "conv3x3"))]
    if name == "demo-e1":
        archs.append([g if k < 2 + len(sp.stages) or (k - 2 - len(sp.stages)) % 2 == 0 else 0
                      for k, g in enumerate(fixed)])  # every block at expand 1
    for genes in archs:
        genes[0] = fixed[0]
        if name != "cell-demo":
            genes[1] = fixed[1]  # the width the supernet holds
        arch = sp.from_genes(genes)
        with torch.no_grad():
            single = net(x, arch)
            assert single.std(0).max() > 1e-2  # the output depends on the input: the check can fail
            assert torch.allclose(single, net.relaxed_forward(x, _one_hot(net, genes)), rtol=1e-4, atol=1e-4), \
                arch.summary
    uniform = {g: torch.full((n + 1,), 1.0 / (n + 1)) for g, n in
               ((g, sp.gene_upper_bounds()[g]) for g in net.searchable_genes())}
    with torch.no_grad():
        assert not torch.allclose(net(x, arch), net.relaxed_forward(x, uniform), atol=1e-3)


def test_registered_with_its_options():
    assert "differentiable" in list_strategies()
    opts = strategy_options("differentiable")
    assert {"steps", "lam", "lam_factor", "arch_lr", "weight_lr", "temperature", "resolution"} <= set(opts)
    with pytest.raises(SearchError, match="lam_factor"):
        create_strategy("differentiable", get_space("demo"), lam_factor=0.5)


def test_refuses_an_evaluator_without_a_supernet_before_making_the_run(demo_lut_path, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SearchError, match="--evaluator supernet"):
        run_search(demo_lut_path, out, evaluator="proxy:synflow", strategy="differentiable", population=3,
                   generations=1, progress=False)
    assert not out.exists()


def _budget(lut_path):
    from hwnas.search.run import searchable_space

    lut = LUT.load(lut_path)
    pred = latency_predictor(lut, searchable_space(lut, lut_path, None))  # the 24 px the LUT covers
    _, fastest = pred.fastest()
    sp = pred.space
    big = sp.from_genes(sp.gene_upper_bounds())
    return pred, fastest + 0.35 * (pred.predict(big) - fastest)


def test_expected_latency_is_exact_one_change_from_the_mode(demo_lut_path, tiny_supernet):
    """The linearised E[latency] at a corner (near one-hot logits) is the LUT's prediction of that arch."""
    from hwnas.evaluate import create_evaluator

    pred, _ = _budget(demo_lut_path)
    s = create_strategy("differentiable", pred.space, population=3, seed=0)
    s.bind(predictor=pred, evaluator=create_evaluator("supernet", checkpoint=str(tiny_supernet[0])),
           constraints=Constraints())
    mode = s._mode()
    base, delta = s._linearize(s._probs())
    assert base == pytest.approx(pred.predict(pred.space.from_genes(mode)), rel=1e-9)
    k, g = 3, s._searched[3]
    changed = list(mode)
    changed[g] = (mode[g] + 1) % (s._bounds[g] + 1)
    assert base + float(delta[k][changed[g]]) == pytest.approx(pred.predict(pred.space.from_genes(changed)), rel=1e-6)


def test_a_search_meets_the_budget_and_resumes_to_the_same_front(demo_lut_path, tiny_supernet, tmp_path):
    _, budget = _budget(demo_lut_path)
    kw = dict(evaluator="supernet", evaluator_options={"checkpoint": str(tiny_supernet[0])},
              strategy="differentiable", strategy_options={"steps": 3, "batch_size": 16, "lam": 0.05},
              population=3, seed=0, constraints=Constraints(budget_ms=budget), progress=False)
    full = run_search(demo_lut_path, tmp_path / "full", generations=3, **kw)
    run_search(demo_lut_path, tmp_path / "part", generations=2, **kw)
    resumed = run_search(demo_lut_path, tmp_path / "part", generations=3, resume=True, **kw)
    assert resumed.resumed_from == 2
    assert [r.arch_id for r in resumed.front] == [r.arch_id for r in full.front]
    assert full.front
    state = RunStore(tmp_path / "full" / "run.sqlite").last_generation()[1]
    json.dumps(state)  # the whole state is JSON: logits, lambda, the path
    assert [p["generation"] for p in state["path"]] == [0, 1, 2]
    for p in state["path"]:  # each lambda derived an arch under the budget, or its projection is under it
        if p["latency_ms"] > budget:
            assert "projected_id" in p
    lams = [p["lam"] for p in state["path"]]
    for before, after, p in zip(lams, lams[1:], state["path"]):
        assert after == pytest.approx(before * 2 if p["latency_ms"] > budget else before / 2 ** 0.5)
