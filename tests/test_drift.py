"""The drift reference (hwnas/measuring/drift.py): recorded with a LUT, re-measured later, reported beside raw errors."""
import json

import pytest

from hwnas.measuring.drift import MIN_NOISE_PCT, Drift, check_drift, combine, reference_archs
from hwnas.latency.lut import LUT, LUTError
from hwnas.measuring.measure import lut_profiler_options


def test_lut_records_a_reference_with_its_own_noise(calibrated_lut_path):
    """Each network in 3 fresh processes (more while its two calmest disagree), the lowest kept; the noise is
    how far apart the two calmest were (a process caught in a slow spell of the device does not count)."""
    import numpy as np

    ref = LUT.load(calibrated_lut_path).reference
    assert len(ref["archs"]) == len(ref["best_ms"]) == 3 and ref["processes"] >= 3
    for medians, best in zip(ref["medians_ms"], ref["best_ms"]):
        assert len(medians) == ref["processes"] and best == min(medians) > 0
    calm = [sorted(m)[:2] for m in ref["medians_ms"]]
    assert ref["noise_pct"] == pytest.approx(float(np.median([(b - a) / a * 100 for a, b in calm])), abs=1e-3)


@pytest.mark.slow
def test_check_drift_remeasures_the_reference(calibrated_lut_path):
    lut = LUT.load(calibrated_lut_path)
    d = check_drift(lut, lut_profiler_options(lut, policy=None))
    assert d.source == "reference" and len(d.per_net) == 3
    assert 0.3 < d.factor < 3  # the same networks on the same machine minutes later
    assert d.noise_pct == lut.reference["noise_pct"]
    assert ("faster" in d.describe()) == (d.factor < 1)


def test_older_luts_fall_back_to_calibration_networks(calibrated_lut_path, demo_lut_path):
    lut = LUT.load(calibrated_lut_path)
    lut.reference = None
    archs, then, noise, source = reference_archs(lut)
    assert source == "calibration" and noise is None and len(archs) == 3
    assert then == [r["measured"]["median_ms"] for r in lut.calibration["data"][:3]]
    assert reference_archs(LUT.load(demo_lut_path)) is None  # no calibration either: nothing to compare


def test_drift_arithmetic():
    d = Drift(0.95, (0.94, 0.95, 0.97), noise_pct=2.0, source="reference", measured_at="now")
    assert d.pct == pytest.approx(-5.0) and d.exceeds_noise and "5.0 % faster" in d.describe()
    assert d.correct(0.95) == pytest.approx(1.0) and "WARNING" in d.warning()
    calm = Drift(1.008, (1.004, 1.008, 1.01), noise_pct=None, source="calibration", measured_at="now")
    assert not calm.exceeds_noise and calm.warning() is None  # under the MIN_NOISE_PCT floor
    assert MIN_NOISE_PCT == 1.0
    both = combine(d, Drift(1.05, (1.0, 1.0, 1.0), 2.0, "reference", "later"))
    assert both.factor == pytest.approx((0.95 * 1.05) ** 0.5)
    json.dumps(d.to_dict(), allow_nan=False)


@pytest.mark.parametrize("bad", [[], {"archs": []}, {"archs": [{}], "best_ms": [-1.0], "noise_pct": 1.0},
                                 {"archs": [{}], "best_ms": [1.0], "noise_pct": float("nan")},
                                 {"archs": [{}], "best_ms": [1.0, 2.0], "noise_pct": 1.0}])
def test_a_corrupt_reference_is_refused(calibrated_lut_path, tmp_path, bad):
    data = json.loads(calibrated_lut_path.read_text())
    data["reference"] = bad
    path = tmp_path / "lut.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LUTError, match="reference"):
        LUT.load(path)
