import json

import pytest

from hwnas.latency.lut import LUT, LUTError, SCHEMA_VERSION, fingerprint_diff


def test_round_trip(demo_lut, tmp_path):
    out = demo_lut.save(tmp_path / "copy.json")
    again = LUT.load(out)
    assert again.entries == demo_lut.entries
    assert again.fingerprint == demo_lut.fingerprint and again.profiler == "torch-cpu"
    assert again.search_space() == demo_lut.search_space()
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["command"] == "pytest fixture"
    for key in ("cpu_model", "cpu_count", "os", "python", "torch", "onnxruntime", "threads"):
        assert key in data["fingerprint"]
    assert data["space_digest"] == demo_lut.search_space().digest
    assert all(e["p10_ms"] <= e["median_ms"] <= e["p90_ms"] for e in data["entries"].values())


def _write(tmp_path, text):
    p = tmp_path / "lut.json"
    p.write_text(text)
    return p


def _valid(demo_lut_path):
    return json.loads(demo_lut_path.read_text())


@pytest.mark.parametrize("fraction", [0.1, 0.33, 0.5, 0.77, 0.99])
def test_truncated_file(demo_lut_path, tmp_path, fraction):
    text = demo_lut_path.read_text()
    with pytest.raises(LUTError, match=r"not valid JSON \(the file ends early: truncated\?\)"):
        LUT.load(_write(tmp_path, text[: int(len(text) * fraction)]))


def test_not_json_and_binary(tmp_path):
    with pytest.raises(LUTError, match="not valid JSON"):
        LUT.load(_write(tmp_path, "hello, not json"))
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(LUTError, match="not UTF-8 text"):
        LUT.load(p)


def test_missing_file_says_how_to_build(tmp_path):
    with pytest.raises(LUTError, match="does not exist; build it with hwnas profile"):
        LUT.load(tmp_path / "none.json")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="nn-meter"), "not an hwnas LUT"),
    (lambda d: d.update(schema_version=99), "schema version 99, this hwnas reads version 1; rebuild"),
    (lambda d: d.pop("fingerprint"), r"missing field\(s\) \['fingerprint'\]"),
    (lambda d: d.pop("entries"), r"missing field\(s\) \['entries'\]"),
    (lambda d: d.update(entries=[]), "field 'entries' must be dict"),
    (lambda d: d["entries"].update({"conv:r8:i3:o8:k3:s1:relu": {"median_ms": 1.0}}), "lacks"),
    (lambda d: d["entries"].update({"conv:r8:i3:o8:k3:s1:relu": dict(median_ms=-1, p10_ms=1, p90_ms=1, std_ms=0,
                                                                      cv=0, n=1)}), "must be positive"),
    (lambda d: d["space"].update(kernels=[4]), "its search space is invalid"),
    (lambda d: d.update(calibration=[1, 2]), "'calibration' must be an object or null"),
])
def test_invalid_content(demo_lut_path, tmp_path, mutate, message):
    data = _valid(demo_lut_path)
    mutate(data)
    with pytest.raises(LUTError, match=message):
        LUT.load(_write(tmp_path, json.dumps(data)))


def test_top_level_not_object(tmp_path):
    with pytest.raises(LUTError, match="top level is list"):
        LUT.load(_write(tmp_path, "[]"))


def test_fingerprint_diff_ignores_informative_fields():
    a = {"cpu_model": "X", "threads": 1, "os": "Linux-1", "numpy": "1"}
    b = {"cpu_model": "Y", "threads": 1, "os": "Linux-2", "numpy": "2"}
    assert fingerprint_diff(a, b) == {"cpu_model": ("X", "Y")}
    assert fingerprint_diff(a, a) == {}
