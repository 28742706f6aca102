"""Property-based fuzzing of every parser a user's file reaches (hypothesis).

The property: any input either parses or raises the project's own input error (``InputError`` and its
subclasses: exit 2 with a message); never another exception (which the CLI reports as an internal error).
Inputs start from real files (the shipped demo LUT, the demo space, a valid arch) and are mutated.
``FUZZ_CASES`` counts the generated inputs that ran; the test session prints the total.
"""
import copy
import json
import os
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from hwnas.core.errors import InputError
from hwnas.latency.lut import LUT
from hwnas.latency.predict import MBv3LatencyPredictor
from hwnas.spaces.base import get_space
from hwnas.spaces.mbv3 import MBv3Space

FUZZ_CASES = {"n": 0}
# HWNAS_FUZZ_EXAMPLES=2000 for a longer hunt; 150 per parser keeps the suite's share at ~5 s
FUZZ = settings(max_examples=int(os.environ.get("HWNAS_FUZZ_EXAMPLES", 150)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

DEMO = get_space("demo")
GOOD_ARCH = {"space": "demo", "resolution": 28, "width": 1.0, "kernels": [[3, 5], [3], [5, 5, 3], [3]],
             "expands": [[2, 4], [3], [2, 2, 4], [3]]}
LUT_DICT = json.loads((ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json").read_text())
SPACE_DICT = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())

scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


def _paths(obj, prefix=()):
    """Every (path) into nested dicts/lists, for choosing what to mutate."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            yield from _paths(v, prefix + (i,))


def _mutate(base, draw_path_index: int, value, drop: bool):
    """A deep copy of ``base`` with the value at one path replaced by ``value`` (or that key dropped)."""
    out = copy.deepcopy(base)
    paths = [p for p in _paths(out) if p]
    path = paths[draw_path_index % len(paths)]
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def _ok_or_input_error(fn):
    FUZZ_CASES["n"] += 1
    try:
        return fn()
    except InputError:
        return None


@FUZZ
@given(st.integers(0, 10**6), json_values, st.booleans())
def test_arch_dicts(i, value, drop):
    data = _mutate(GOOD_ARCH, i, value, drop)
    arch = _ok_or_input_error(lambda: DEMO.arch_from_dict(data))
    if arch is not None:
        arch.layers()  # a parsed arch is a usable arch


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arch_files_of_any_bytes(tmp_path_factory, raw):
    p = tmp_path_factory.mktemp("arch") / "arch.json"
    p.write_bytes(raw)
    _ok_or_input_error(lambda: DEMO.load_arch(p))


@FUZZ
@given(st.integers(0, 10**6), json_values, st.booleans())
def test_space_dicts(i, value, drop):
    data = _mutate(SPACE_DICT, i, value, drop)
    space = _ok_or_input_error(lambda: MBv3Space.from_dict(data))
    if space is not None:
        space.smallest().layers()


@FUZZ
@given(st.text(max_size=300))
def test_space_toml_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("space") / "space.toml"
    p.write_text(text)
    _ok_or_input_error(lambda: MBv3Space.from_file(p))


@FUZZ
@given(st.integers(0, 10**6), json_values, st.booleans())
def test_lut_dicts_then_predict(i, value, drop):
    data = _mutate(LUT_DICT, i, value, drop)

    def load_and_predict():
        lut = LUT.from_dict(data)
        pred = MBv3LatencyPredictor(lut)
        ms = pred.predict(pred.space.smallest())
        assert ms > 0  # a LUT that loads never predicts 0, negative or NaN
        return lut

    _ok_or_input_error(load_and_predict)


@FUZZ
@given(st.sampled_from([0.05, 0.3, 0.5, 0.9, 0.999]), st.binary(max_size=40))
def test_lut_files_cut_or_garbled(tmp_path_factory, cut, junk):
    text = (ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json").read_bytes()
    p = tmp_path_factory.mktemp("lut") / "lut.json"
    p.write_bytes(text[: int(len(text) * cut)] + junk)
    _ok_or_input_error(lambda: LUT.load(p))


@FUZZ
@given(st.dictionaries(st.sampled_from(["format", "run", "arch_id", "arch", "latency", "accuracy", "parity",
                                        "onnx", "weights", "data", "files", "params_m", "macs_m", "lut",
                                        "versions", "command", "created", "seconds"]), json_values),
       st.booleans())
def test_report_json_of_a_bundle(tmp_path_factory, report, tagged):
    from hwnas.finalize.report import rerender

    d = tmp_path_factory.mktemp("bundle")
    if tagged:
        report["format"] = "hwnas-finalize-report"
    (d / "report.json").write_text(json.dumps(report))
    _ok_or_input_error(lambda: rerender(d))


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_run_directories_with_a_damaged_store(tmp_path_factory, raw, as_sqlite):
    from hwnas.finalize import read_run

    d = tmp_path_factory.mktemp("run")
    db = d / "run.sqlite"
    if as_sqlite:  # a real SQLite file whose tables are not ours, or hold junk
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        con.execute("INSERT INTO meta VALUES (?, ?)", ("config", raw.decode("latin-1")))
        con.commit()
        con.close()
    else:
        db.write_bytes(raw)
    _ok_or_input_error(lambda: read_run(d))
