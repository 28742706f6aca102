"""Strict JSON out (hwnas/core/jsonio.py): no NaN/Infinity in any file hwnas writes."""
import json
import math

import pytest

from hwnas.core import jsonio
from hwnas.evaluate.proxies import NO_SIGNAL
from hwnas.latency.lut import LUT


def test_finite_values_round_trip_and_non_finite_ones_are_named():
    data = {"front": [{"accuracy": 90.0}, {"accuracy": 91.5, "extra": [1, 2.5]}]}
    assert json.loads(jsonio.dumps(data, indent=1)) == data
    for bad, where in ((math.nan, "front[1].accuracy"), (math.inf, "front[1].accuracy"), (-math.inf, "front[1].accuracy")):
        data["front"][1]["accuracy"] = bad
        with pytest.raises(jsonio.NonFiniteError, match=rf"at {where.replace('[', '.').replace(']', '.')}"):
            jsonio.dumps(data)


def test_a_lut_with_a_non_finite_number_is_not_written(calibrated_lut_path, tmp_path):
    lut = LUT.load(calibrated_lut_path)
    key = next(iter(lut.entries))
    lut.entries[key]["median_ms"] = math.nan
    with pytest.raises(jsonio.NonFiniteError, match=f"entries.{key}.median_ms"):
        lut.save(tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_proxy_floor_is_finite():
    assert math.isfinite(NO_SIGNAL) and NO_SIGNAL < -700
