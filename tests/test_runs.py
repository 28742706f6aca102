"""Reading a finished run (hwnas.search.runs, beside the run store); finalize and report read runs through it."""
import pytest

from hwnas.finalize import FinalizeError
from hwnas.finalize import read_run as finalize_read_run
from hwnas.search.runs import RunError, read_run


def test_read_run_is_one_function_with_one_error(tmp_path):
    assert finalize_read_run is read_run  # `from hwnas.finalize import read_run` keeps working
    with pytest.raises(RunError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinalizeError, match="not a search run"):  # what finalize's callers catch
        read_run(tmp_path / "empty")


def test_the_front_is_read_as_records_and_one_without_its_fields_is_refused(tmp_path):
    import json

    from hwnas.search.records import SearchRecord
    from hwnas.search.store import RunStore

    store = RunStore(tmp_path / "run.sqlite")
    store.set_meta("config", {"space": {}, "lut": "x.json", "evaluator": "proxy:synflow"})
    store.mark_complete({})
    store.close()
    rec = SearchRecord("a1", {"resolution": 24}, 1.5, 0.1, 2.0, 0.04, 9, 30.0)
    (tmp_path / "front.json").write_text(json.dumps({"front": [rec.to_dict()]}))
    assert read_run(tmp_path).front == [rec]
    (tmp_path / "front.json").write_text(json.dumps({"front": [{"arch_id": "a1", "accuracy": 30.0}]}))
    with pytest.raises(RunError, match=r"front.json is corrupt .*front\[0\] lacks the field\(s\) \['arch', 'latency_ms'"):
        read_run(tmp_path)
