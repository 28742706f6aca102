import json
import math
from dataclasses import FrozenInstanceError, fields

import pytest

from hwnas.core.errors import InputError
from hwnas.search.problem import Constraints, Problem
from hwnas.search.records import RecordError, SearchRecord
from hwnas.spaces.base import get_space


@pytest.fixture(scope="module")
def record():
    return SearchRecord.of(get_space("demo").sample(0), 1.25, 42.5)


def test_a_record_counts_its_costs_from_the_arch(record):
    arch = get_space("demo").sample(0)
    layers = arch.layers()
    assert record.arch_id == arch.id and record.arch == arch.to_dict()
    assert record.latency_ms == 1.25 and record.accuracy == 42.5 and record.layers == len(layers)
    assert record.params_m == pytest.approx(sum(d.params for d in layers) / 1e6)
    assert record.macs_m == pytest.approx(sum(d.macs for d in layers) / 1e6)


def test_round_trip_through_a_dict_and_json(record):
    d = record.to_dict()
    assert list(d) == [f.name for f in fields(SearchRecord)]  # the key order front.json and best.json are written in
    assert list(d) == ["arch_id", "arch", "latency_ms", "params_m", "macs_m", "memory_mb", "layers", "accuracy"]
    assert SearchRecord.from_dict(d) == record
    assert SearchRecord.from_dict(json.loads(json.dumps(d))) == record
    d["arch"]["resolution"] = -1  # a copy: the record's arch is not changed through its dict
    assert record.arch["resolution"] != -1
    assert SearchRecord.from_dict({**record.to_dict(), "note": "ignored"}) == record


def test_a_dict_with_missing_fields_is_refused_naming_them(record):
    d = record.to_dict()
    del d["macs_m"], d["layers"]
    with pytest.raises(RecordError, match=r"front\[3\] lacks the field\(s\) \['macs_m', 'layers'\]"):
        SearchRecord.from_dict(d, "front[3]")
    with pytest.raises(InputError, match="not a JSON object"):
        SearchRecord.from_dict(["arch_id"])


def test_failed_is_a_nan_accuracy(record):
    from dataclasses import replace

    assert not record.failed
    bad = replace(record, accuracy=float("nan"))
    assert bad.failed
    with pytest.raises(FrozenInstanceError):
        record.accuracy = 1.0  # type: ignore[misc]


def test_objectives_and_violations_read_the_record(record):
    from dataclasses import replace

    problem = Problem(None, None, Constraints(budget_ms=1.0, min_accuracy=50.0),
                      objectives=("accuracy", "latency_ms", "params_m"))
    failed = replace(record, accuracy=float("nan"))
    F = problem.F([record, failed])
    assert F[0].tolist() == [-42.5, 1.25, record.params_m] and F[1][0] == 0.0  # a failed evaluation scores 0
    cv = problem.cv([record, failed])
    assert cv[0] == pytest.approx(0.25 + 7.5 / 50) and cv[1] == 1e6
    assert not math.isnan(cv[1])


def test_a_dict_with_a_field_of_the_wrong_type_is_refused_naming_it(record):
    from hwnas.search.records import RecordError, SearchRecord

    d = record.to_dict()
    with pytest.raises(RecordError, match=r"\['latency_ms'\] have the wrong type \(latency_ms=None\)"):
        SearchRecord.from_dict({**d, "latency_ms": None}, "front[0]")
    with pytest.raises(RecordError, match="layers"):
        SearchRecord.from_dict({**d, "layers": True})


def test_an_objective_given_twice_is_refused_before_the_run_is_made(tmp_path):
    """Issue 47: `--objectives accuracy accuracy latency_ms` was stored as given (accuracy weighed twice in the
    hypervolume and the crowding). Refused in one line by the real command, before --out is made."""
    from conftest import ROOT, cli_here

    r = cli_here("search", "--lut", str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json"), "--objectives",
                 "accuracy", "accuracy", "latency_ms", "--out", str(tmp_path / "r"))
    assert r.returncode == 2, r.stderr
    assert "objective(s) ['accuracy'] given twice" in r.stderr and "--objectives accuracy latency_ms" in r.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(InputError, match="given twice"):
        Problem(None, None, Constraints(), ("accuracy", "latency_ms", "params_m", "latency_ms"))
