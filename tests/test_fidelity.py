from pathlib import Path

import numpy as np
import pytest

from hwnas.measuring.fidelity import error_stats, proportional_fit, run_fidelity
from hwnas.latency.lut import LUT
from hwnas.spaces.mbv3 import MBv3Arch


def test_error_stats_by_hand():
    s = error_stats([1.04, 2.18, 2.73, 4.0, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["within_5_pct"] == 40.0 and s["within_10_pct"] == 80.0
    assert s["mape_pct"] == pytest.approx((4 + 9 + 9 + 0 + 20) / 5)
    assert s["worst_error_pct"] == pytest.approx(20.0)
    assert proportional_fit(np.array([1.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(2.0)


def test_fidelity_run_on_real_measurements(demo_lut_path, demo, quick_policy):
    lut = LUT.load(demo_lut_path)
    rng_archs = [MBv3Arch(demo, 24, a.width, a.kernels, a.expands) for a in (demo.sample(s) for s in range(6))]
    report = run_fidelity(lut, options={"policy": quick_policy}, archs=rng_archs, progress=False, processes=0)
    assert report.n == 6 and len(report.rows) == 6
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in report.rows)
    assert all(0 < r["measured_rounds_p10_ms"][0] <= r["measured_rounds_ms"][0] for r in report.rows)
    assert report.low_quantile is None  # an uncalibrated LUT: nothing to refit at p10
    assert "LUT sum (uncalibrated)" in report.methods
    assert "MAPE" in report.table() and report.fingerprint_diff == {}


def test_on_another_device_the_drift_is_not_called_drift():
    """Seen on an AVX-512 host with an AVX2-built LUT: '15.7 % slower' was the other CPU, not a change over time."""
    from hwnas.measuring.fidelity import FidelityReport

    stats = {"within_5_pct": 8.0, "within_10_pct": 42.0, "mape_pct": 11.1, "worst_error_pct": 24.0,
             "kendall_tau": 0.8}
    drift = {"describe": "device now 15.7 % slower than when the LUT was built", "factor": 1.157,
             "exceeds_noise": True}
    here = FidelityReport("l.json", "torch-cpu", 50, 1, 2, {"LUT": stats}, drift=drift)
    assert "judge the LUT by the corrected row" in here.table()
    foreign = FidelityReport("l.json", "torch-cpu", 50, 1, 2, {"LUT": stats}, drift=drift,
                             fingerprint_diff={"cpu_flags": ("avx2 fma", "avx2 avx512f avx512_vnni fma")})
    table = foreign.table()
    assert "device differs from the LUT's (cpu_flags)" in table and "corrected row" not in table


def test_the_low_quantile_copy_reads_every_measurement_at_p10_and_refits(tmp_path):
    """What a build keeping the 10th percentile would have stored: blocks and calibration networks at p10, the
    calibration refitted on them, the LUT it was made from left as it was; a paired LUT's ratios have no p10 copy."""
    import json

    from hwnas.latency.predict import latency_predictor
    from hwnas.measuring.fidelity import FidelityReport, low_quantile_lut

    src = Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_demo.json"
    lut = LUT.load(src)
    before = json.dumps(lut.to_dict(), sort_keys=True)
    low = low_quantile_lut(lut)
    assert json.dumps(lut.to_dict(), sort_keys=True) == before
    assert all(low.entries[k]["median_ms"] == e["p10_ms"] < e["median_ms"] or e["p10_ms"] == e["median_ms"]
               for k, e in lut.entries.items())
    space = low.search_space()
    cal = [space.arch_from_dict(r["arch"]) for r in lut.calibration["data"]]
    p10 = np.array([r["measured"]["p10_ms"] for r in lut.calibration["data"]])
    fitted = latency_predictor(low, space).predict_many(cal)
    assert np.mean(np.abs(fitted - p10) / p10) < 0.05  # the refit describes the networks' own p10
    assert np.all(p10 <= np.array([r["measured"]["median_ms"] for r in lut.calibration["data"]]))

    paired = LUT.load(src)
    paired.settings["pairing"] = {"reference": "x"}
    assert low_quantile_lut(paired) is None
    stats = {"within_5_pct": 90.0, "within_10_pct": 100.0, "mape_pct": 1.0, "worst_error_pct": 3.0,
             "kendall_tau": 0.95}
    table = FidelityReport("l.json", "ort-cpu", 50, 1, 2, {"LUT": stats}, rounds=2, repeatability=stats,
                           low_quantile={"model": "boundary", "fidelity": stats, "repeatability": stats}).table()
    assert "p10: LUT + calibration (boundary)" in table and "p10: round 2 vs round 1" in table
