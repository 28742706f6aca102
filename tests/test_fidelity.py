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
