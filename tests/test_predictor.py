import random

import numpy as np
import pytest

from hwnas.evaluate.base import EvaluatorError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.predictor import AccuracyPredictor
from hwnas.evaluate.proxies import synflow


@pytest.fixture(scope="module")
def scored(demo):
    rng = random.Random(0)
    archs = list({a.id: a for a in (demo.sample(rng) for _ in range(80))}.values())
    return archs, [synflow(a) for a in archs]


def test_fit_reports_held_out_tau_and_learns(demo, scored):
    archs, scores = scored
    p = AccuracyPredictor(demo, hidden=64, seed=0)
    rep = p.fit(archs, scores, epochs=300, seed=0)
    assert rep.n_val == 16 and rep.n_train == len(archs) - 16
    assert rep.val_kendall_tau > 0.3  # it ranks unseen archs better than chance
    pred = p.predict(archs[:5])
    assert pred.shape == (5,) and np.isfinite(pred).all()


def test_save_load_and_use_as_evaluator(demo, scored, tmp_path):
    archs, scores = scored
    p = AccuracyPredictor(demo, hidden=32, seed=1)
    p.fit(archs, scores, epochs=50, seed=1)
    path = tmp_path / "pred.pt"
    p.save(path)
    ev = create_evaluator("predictor", path=str(path))
    assert ev.evaluate(archs[:4]) == pytest.approx(p.predict(archs[:4]).tolist(), rel=1e-6)
    assert ev.config()["path"] == str(path)
    with pytest.raises(EvaluatorError, match="does not exist; train one first"):
        create_evaluator("predictor", path=str(tmp_path / "none.pt"))
    with pytest.raises(EvaluatorError, match="needs path=FILE"):
        create_evaluator("predictor")


def test_archs_of_a_resolution_restricted_space_are_predicted_in_the_trained_space(demo):
    """A search over a LUT of some resolutions has a smaller space; its archs still get a prediction."""
    from hwnas.spaces.base import ArchError
    from hwnas.spaces.mbv3 import MBv3Space

    predictor = AccuracyPredictor(demo)
    sub = MBv3Space.from_dict({**demo.to_dict(), "resolutions": [demo.resolutions[0]]})
    archs = [sub.sample(random.Random(i)) for i in range(3)]
    same = [demo.arch_from_dict(a.to_dict()) for a in archs]
    assert predictor.predict(archs).tolist() == predictor.predict(same).tolist()
    other = MBv3Space.from_dict({**demo.to_dict(), "resolutions": [demo.resolutions[-1] + 8]})
    with pytest.raises(ArchError, match="accuracy predictor"):
        predictor.predict([other.sample(random.Random(0))])
