import itertools

import numpy as np
import pytest

from hwnas.search.pareto import (constrained_fronts, crowding_distance, dominates, hypervolume_2d, non_dominated_fronts,
                                 survive)


def brute_force_first_front(F):
    return sorted(i for i in range(len(F)) if not any(dominates(F[j], F[i]) for j in range(len(F)) if j != i))


@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_sort_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    F = rng.integers(0, 8, size=(60, 3)).astype(float)  # integers: many ties and duplicates
    fronts = non_dominated_fronts(F)
    assert sorted(np.concatenate(fronts).tolist()) == list(range(60))
    remaining = list(range(60))
    for front in fronts:
        sub = F[remaining]
        expected = [remaining[i] for i in brute_force_first_front(sub)]
        assert sorted(front.tolist()) == expected
        remaining = [i for i in remaining if i not in set(front.tolist())]


def test_constraint_domination_ordering():
    # feasible before infeasible, less violation before more, Pareto dominance among the feasible
    f_good, f_bad = [0.0, 0.0], [5.0, 5.0]
    assert [f.tolist() for f in constrained_fronts(np.array([f_good, f_bad]), np.array([0.1, 0.0]))] == [[1], [0]]
    assert [f.tolist() for f in constrained_fronts(np.array([f_good, f_bad]), np.array([0.5, 0.1]))] == [[1], [0]]
    assert [f.tolist() for f in constrained_fronts(np.array([f_bad, f_good]), np.zeros(2))] == [[1], [0]]
    assert [sorted(f.tolist()) for f in constrained_fronts(np.array([[0.0, 1.0], [1.0, 0.0]]), np.zeros(2))] == [[0, 1]]
    F = np.array([[1, 1], [0, 2], [2, 0], [0, 0], [9, 9]], float)
    cv = np.array([0, 0, 0, 0.5, 0.2])
    fronts = [sorted(f.tolist()) for f in constrained_fronts(F, cv)]
    assert fronts == [[0, 1, 2], [4], [3]]


def test_crowding_distance_and_survival():
    F = np.array([[0, 4], [1, 3], [2, 2], [3, 1], [4, 0]], float)
    d = crowding_distance(F)
    assert np.isinf(d[0]) and np.isinf(d[4]) and d[2] == pytest.approx(1.0)
    keep = survive(np.vstack([F, [[5, 5]]]), np.zeros(6), 5)
    assert sorted(keep.tolist()) == [0, 1, 2, 3, 4]


def test_hypervolume_hand_computed():
    # points (1,3), (2,2), (3,1) with reference (4,4): 3 + 2 + 1 = 6 unit squares
    assert hypervolume_2d(np.array([[1, 3], [2, 2], [3, 1]], float), (4, 4)) == pytest.approx(6.0)
    # a dominated point and points beyond the reference add nothing
    assert hypervolume_2d(np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], float), (4, 4)) == pytest.approx(6.0)
    assert hypervolume_2d(np.zeros((0, 2)), (1, 1)) == 0.0
    # against a grid count
    rng = np.random.default_rng(0)
    P = rng.uniform(0, 1, (15, 2))
    xs = (np.arange(400) + 0.5) / 400
    grid = np.array(list(itertools.product(xs, xs)))
    dominated = (grid[:, None, :] >= P[None, :, :]).all(-1).any(-1)
    assert hypervolume_2d(P, (1, 1)) == pytest.approx(dominated.mean(), abs=5e-3)
