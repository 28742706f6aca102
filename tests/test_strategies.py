import random

import numpy as np
import pytest

from hwnas.core.errors import SearchError
from hwnas.search.strategies import create_strategy, list_strategies


def fake_objectives(archs):
    """Deterministic objectives from the architecture itself (depth vs. kernel sizes), for ask/tell mechanics."""
    F = np.array([[-sum(map(sum, a.kernels)) / 10, sum(a.depths) + a.resolution / 100] for a in archs], float)
    cv = np.array([max(0.0, sum(a.depths) - 9) for a in archs], float)
    return F, cv


def drive(strategy, generations):
    asked = []
    for _ in range(generations):
        archs = strategy.ask()
        asked.append([a.id for a in archs])
        strategy.tell(archs, *fake_objectives(archs))
    return asked


@pytest.mark.parametrize("name", ["nsga2", "evolution", "random", "reinforce", "progressive", "predictor-guided", "bayesian"])
def test_strategies_are_seeded_and_propose_valid_new_archs(name, demo):
    if name == "bayesian":
        pytest.importorskip("optuna", reason="the bayesian strategy needs optuna (pip install 'hwnas[bayes]')")
    a = drive(create_strategy(name, demo, population=12, seed=3), 4)
    b = drive(create_strategy(name, demo, population=12, seed=3), 4)
    assert a == b
    assert a != drive(create_strategy(name, demo, population=12, seed=4), 4)
    flat = [i for gen in a for i in gen]
    assert len(set(flat)) == len(flat)  # nothing proposed twice
    s = create_strategy(name, demo, population=12, seed=0)
    for arch in s.ask():
        arch.validate()


@pytest.mark.parametrize("name", ["nsga2", "evolution", "random", "reinforce", "progressive", "predictor-guided", "bayesian"])
def test_state_round_trip_continues_identically(name, demo):
    if name == "bayesian":
        pytest.importorskip("optuna", reason="the bayesian strategy needs optuna (pip install 'hwnas[bayes]')")
    import json

    s1 = create_strategy(name, demo, population=10, seed=1)
    drive(s1, 3)
    state = json.loads(json.dumps(s1.state_dict()))
    s2 = create_strategy(name, demo, population=10, seed=99)
    s2.load_state_dict(state)
    assert drive(s1, 3) == drive(s2, 3)


def test_nsga2_keeps_feasible_and_improves(demo):
    s = create_strategy("nsga2", demo, population=16, seed=0)
    drive(s, 8)
    assert (s.cv == 0).all()


def test_registry(demo):
    assert set(list_strategies()) >= {"nsga2", "evolution", "random"}
    with pytest.raises(SearchError, match="unknown strategy 'cma'"):
        create_strategy("cma", demo)


def test_reinforce_learns_to_meet_the_constraint(demo):
    """The rank reward puts infeasible archs behind feasible ones: the controller learns to avoid them."""
    s = create_strategy("reinforce", demo, population=16, seed=0)
    feasible = []
    for _ in range(15):
        archs = s.ask()
        F, cv = fake_objectives(archs)
        s.tell(archs, F, cv)
        feasible.append(float((cv == 0).mean()))
    assert np.mean(feasible[-3:]) > np.mean(feasible[:3]) and np.mean(feasible[-3:]) >= 0.95
    assert s.baseline is not None and len(s.pop) == 16


def test_reinforce_options_are_checked(demo):
    with pytest.raises(SearchError, match="baseline_decay"):
        create_strategy("reinforce", demo, baseline_decay=1.5)
    assert "reinforce" in list_strategies()


def test_progressive_widens_the_space_on_schedule(demo):
    s = create_strategy("progressive", demo, population=12, seed=0, phases=3, generations_per_phase=2)
    seen_max = []
    for _ in range(7):
        archs = s.ask()
        seen_max.append(max(max(a.depths) for a in archs))
        s.tell(archs, *fake_objectives(archs))
    assert max(seen_max[:2]) == demo.depths[1]   # phase 0: the two smallest depths of three
    assert max(seen_max[4:]) == max(demo.depths)  # the last phase reaches the whole space
    assert s.caps()[2:] == demo.gene_upper_bounds()[2:]
    with pytest.raises(SearchError, match="phases"):
        create_strategy("progressive", demo, phases=0)


@pytest.mark.parametrize("name", ["nsga2", "progressive"])
def test_nsga2_varies_gene_matrices_where_the_space_can(name, demo):
    """An mbv3-kind space goes through the gene-matrix path; the archs it makes are the archs their genes
    name (same id as through the JSON), and a cell space, which has no such path, still searches."""
    from hwnas.search.strategies import has_gene_variation
    from hwnas.spaces.base import get_space

    cells = get_space("cell-demo")
    assert has_gene_variation(demo) and not has_gene_variation(cells)
    s = create_strategy(name, demo, population=12, seed=0)
    drive(s, 3)
    for a in s.ask():
        a.validate()
        assert a.id == demo.arch_from_dict(a.to_dict()).id and a.genes() == demo.from_genes(a.genes()).genes()
    c = create_strategy("nsga2", cells, population=12, seed=0)
    for _ in range(3):
        archs = c.ask()
        assert len({a.id for a in archs}) == 12
        c.tell(archs, np.array([[i, -i] for i in range(12)], float), np.zeros(12))


def test_nsga2_in_a_space_of_one_arch_repeats_it(demo):
    """50 tries per wanted arch, then a repeat: a search in a tiny space ends."""
    from dataclasses import replace

    one = replace(demo, name="one", depths=(1,), kernels=(3,), expands=(3,), resolutions=(demo.resolutions[0],))
    s = create_strategy("nsga2", one, population=3, seed=0)
    for _ in range(3):
        archs = s.ask()
        assert len(archs) == 3 and len({a.id for a in archs}) == 1
        s.tell(archs, np.zeros((3, 2)), np.zeros(3))


def test_a_plugin_overriding_only_project_keeps_its_restriction(demo):
    """_project is the documented hook; the gene-matrix fast path must not bypass it."""
    from dataclasses import replace

    from hwnas.search.strategies import NSGA2

    class SmallestInputs(NSGA2):
        def _project(self, arch):
            return replace(arch, resolution=min(self.space.resolutions))

    s = SmallestInputs(demo, population=10, seed=0)
    for _ in range(3):
        archs = s.ask()
        assert all(a.resolution == min(demo.resolutions) for a in archs)
        s.tell(archs, np.array([[-float(i), float(i)] for i in range(len(archs))]), np.zeros(len(archs)))


def test_predictor_guided_bound_to_a_run_proposes_only_archs_under_the_budget(demo_lut_path):
    """Bound (as a search run binds it), the candidates' latency comes from the LUT: no evaluation is spent on
    an arch over the budget, the first generation's included, with either acquisition that uses the LUT."""
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.search.problem import Constraints
    from hwnas.search.run import searchable_space

    lut = LUT.load(demo_lut_path)
    space = searchable_space(lut, demo_lut_path, None)
    pred = latency_predictor(lut, space)
    rng = random.Random(0)
    # half the space is over it (whatever this machine's LUT): plenty of candidates on either side
    lats = pred.predict_many([space.sample(rng) for _ in range(400)])
    budget = float(np.median(lats))
    for acquisition in ("ehvi", "front"):
        s = create_strategy("predictor-guided", space, population=10, seed=0, steps=50, acquisition=acquisition)
        s.bind(predictor=pred, evaluator=None, constraints=Constraints(budget_ms=budget))
        over, spread = [], []
        for _ in range(3):
            archs = s.ask()
            lat = pred.predict_many(archs)
            over.append(int((lat > budget).sum()))
            spread.append(float(lat.max() - lat.min()))
            F = np.column_stack([-np.array([sum(map(sum, a.kernels)) for a in archs], float), lat])
            s.tell(archs, F, np.maximum(0.0, lat / budget - 1.0))
        assert over == [0, 0, 0], acquisition
        assert spread[0] > 0.5 * (budget - lats.min()), "the first generation spans the latencies under the budget"


def test_predictor_guided_acquisitions(demo):
    """Every acquisition that needs no LUT proposes fresh valid archs; an unknown one is refused with the
    choices; ehvi refuses to run unbound (it needs the exact latency) instead of silently becoming another."""
    for acquisition in ("auto", "front", "thompson"):
        flat = [i for gen in drive(create_strategy("predictor-guided", demo, population=8, seed=0, steps=30,
                                                   acquisition=acquisition), 3) for i in gen]
        assert len(set(flat)) == len(flat) == 24
    with pytest.raises(SearchError, match="acquisition must be one of auto, ehvi, front, thompson"):
        create_strategy("predictor-guided", demo, acquisition="greedy")
    with pytest.raises(SearchError, match="ehvi needs the strategy bound"):
        create_strategy("predictor-guided", demo, acquisition="ehvi").ask()
    with pytest.raises(SearchError, match="ehvi needs two objectives, accuracy and one more"):
        create_strategy("predictor-guided", demo, acquisition="ehvi").bind(
            predictor=None, evaluator=None, constraints=None, objectives=("accuracy", "latency_ms", "params_m"))


def test_expected_hv_improvement_matches_monte_carlo():
    """The closed form agrees with sampling the uncertain objective and measuring the hypervolume gained."""
    from hwnas.search.guided import expected_hv_improvement
    from hwnas.search.pareto import hypervolume_2d

    rng = np.random.default_rng(0)
    front = np.array([[-0.9, 3.0], [-0.8, 2.0], [-0.6, 1.0], [-0.85, 2.5]])  # the last is dominated
    ref = (-0.5, 4.0)
    base = hypervolume_2d(front, ref)
    mu, sigma, exact = np.array([-0.85, -0.7, -0.95, -0.4]), np.array([0.05, 0.1, 0.02, 0.01]), \
        np.array([1.5, 0.5, 3.5, 1.0])
    got = expected_hv_improvement(mu, sigma, exact, front, ref)
    for m, s, x, g in zip(mu, sigma, exact, got):
        y = rng.normal(m, s, 20_000)
        mc = np.mean([hypervolume_2d(np.vstack([front, [[v, x]]]), ref) - base for v in y[:4000]])
        assert g == pytest.approx(mc, abs=3e-3 + 0.03 * abs(mc))
    assert got[3] < 1e-6  # worse than the reference's accuracy almost surely: nothing to gain
    assert expected_hv_improvement(mu, sigma, exact, np.zeros((0, 2)), ref)[1] == pytest.approx(
        (ref[1] - 0.5) * (ref[0] - mu[1]), rel=0.05)  # an empty front: the whole box (nearly no mass above ref)
