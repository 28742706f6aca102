"""Where evaluations run: a local process pool and Ray give the front a serial run gives, and every
finished evaluation is stored as it comes."""
import os
from pathlib import Path

import pytest

from hwnas.core.errors import SearchError
from hwnas.evaluate import create_evaluator
from hwnas.evaluate.base import CachedEvaluator
from hwnas.search import run_search
from hwnas.search.dispatch import PoolDispatcher, make_dispatcher
from hwnas.search.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _search(lut, out, **kw):
    args = dict(evaluator="proxy:synflow", population=6, generations=2, seed=0, progress=False)
    args.update(kw)
    return run_search(lut, out, **args)


def _front(result):
    return [r.arch_id for r in result.front]


def test_pool_results_arrive_per_chunk_and_equal_serial(demo, tmp_path):
    archs = demo.sample_distinct(4, 0)
    ev = create_evaluator("proxy:synflow")
    seen = []
    cached = CachedEvaluator(ev, dispatcher=PoolDispatcher(2), on_result=lambda a, s: seen.append((a, s)))
    scores = cached.evaluate(archs)
    assert scores == pytest.approx(ev.evaluate(archs))
    assert sorted(len(a) for a, _ in seen) == [2, 2] and {x.id for a, _ in seen for x in a} == {a.id for a in archs}


def test_bad_executor_arguments(demo_lut_path, tmp_path):
    with pytest.raises(SearchError, match="unknown executor 'slurm'"):
        make_dispatcher(1, "slurm")
    with pytest.raises(SearchError, match="--ray-address needs --executor ray"):
        _search(demo_lut_path, tmp_path / "r", ray_address="auto")
    assert not (tmp_path / "r").exists()


class CrashOnce:
    """A real evaluator (synflow) whose worker process dies the first time it runs: the marker file says
    it already did."""

    name = "crash-once"

    def __init__(self, marker: str):
        self.marker, self.inner = marker, create_evaluator("proxy:synflow")

    def config(self):
        return self.inner.config()

    def evaluate(self, archs):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("crashed once")
            os._exit(1)
        return self.inner.evaluate(archs)


class AlwaysFails:
    name = "always-fails"

    def config(self):
        return {}

    def evaluate(self, archs):
        raise ValueError("this evaluator cannot score such an arch")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'hwnas[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}})
    yield ray
    ray.shutdown()


def test_ray_search_equals_serial_and_stores_every_evaluation(local_ray, demo_lut_path, tmp_path):
    serial = _search(demo_lut_path, tmp_path / "serial")
    on_ray = _search(demo_lut_path, tmp_path / "ray", executor="ray", workers=2)
    assert _front(on_ray) == _front(serial) and on_ray.evaluations == serial.evaluations
    store = RunStore(tmp_path / "ray" / "run.sqlite", readonly=True)
    try:
        assert len(store.evals("proxy:synflow")) == serial.evaluations
    finally:
        store.close()


def test_a_ray_worker_that_dies_is_restarted_and_the_front_is_unchanged(local_ray, demo, demo_lut_path, tmp_path):
    from hwnas.search.dispatch import RayDispatcher

    archs = demo.sample_distinct(3, 1)
    marker = tmp_path / "crashed"
    d = RayDispatcher(workers=1)
    try:
        scores = {i: s for i, s in d.imap(CrashOnce(str(marker)), d.split(archs))}
    finally:
        d.close()
    assert marker.exists(), "the worker should have died once"
    assert [scores[i][0] for i in range(3)] == pytest.approx(create_evaluator("proxy:synflow").evaluate(archs))


def test_a_failing_evaluation_on_ray_comes_back_failed_with_the_arch_and_the_cause(local_ray, demo):
    """A deterministic failure is not a crash: the task returns the arch as failed (NaN, its message) once,
    and the run records it and goes on (tests/test_search_run.py covers the recording)."""
    from hwnas.search.dispatch import RayDispatcher

    d = RayDispatcher(workers=1)
    archs = demo.sample_distinct(2, 2)
    try:
        results = dict(d.imap(AlwaysFails(), d.split(archs)))
    finally:
        d.close()
    for i, a in enumerate(archs):
        assert results[i][0] != results[i][0] and "cannot score such an arch" in results[i].errors[a.id]
