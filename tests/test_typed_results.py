"""The library's typed results and their one formatter each (issue 26 item 4): what the CLI and the demo print
comes from these, so the same numbers read the same everywhere."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from hwnas.core.metrics import error_pct
from hwnas.finalize.result import FinalizeResult, LatencyVerdict
from hwnas.measuring.drift import Drift
from hwnas.measuring.measured import MeasuredItem, MeasureResult
from hwnas.measuring.profiling import LutBuildResult
from hwnas.measuring.transfer import TransferResult
from hwnas.profilers import Measurement
from hwnas.spaces.base import get_space, kind_part, layer_costs, macs_m


def _m(median: float) -> Measurement:
    return Measurement.from_samples([median * 0.99, median, median * 1.01], 10)


def _latency(verdict: str = "PASS", predicted: float | None = 0.105, drift_pct: float | None = 2.5) -> dict:
    return {"profiler": "ort-cpu", "precision": "fp32", "measured_file": "dist/model.ort",
            "measured": _m(0.100).to_dict(), "predicted_ms": predicted, "budget_ms": 0.095 if verdict == "FAIL" else 0.12,
            "verdict": verdict, "prediction_error_pct": None if predicted is None else error_pct(predicted, 0.100),
            "gap_ms": 0.005 if verdict == "FAIL" else -0.02, "prediction_error_drift_corrected_pct": drift_pct}


def test_error_pct_and_drift_correction_are_the_verdicts_arithmetic():
    assert error_pct(0.11, 0.10) == pytest.approx(10.0)
    assert error_pct(0.09, 0.10) == pytest.approx(-10.0)
    drift = Drift(factor=1.10, per_net=(1.1, 1.1), noise_pct=1.0, source="reference", measured_at="now")
    # measured 0.11 on a device 10 % slower than at build time = 0.10 then: a 0.10 prediction is exact
    assert drift.corrected_error_pct(0.10, 0.11) == pytest.approx(0.0, abs=1e-9)


def test_verdict_line_says_error_drift_and_provenance():
    v = LatencyVerdict.of(_latency(), provenance="transferred from luts/x.json")
    line = v.line()
    assert line.startswith("PASS: measured median 0.100 ms (p10 ")
    assert "with ort-cpu; predicted 0.105 ms (+5.0 %; +2.5 % corrected for drift; transferred from luts/x.json)" in line
    assert line.endswith("budget 0.12 ms") and not v.failed


def test_verdict_line_of_a_fail_gives_the_gap_and_without_prediction_says_none():
    v = LatencyVerdict.of(_latency("FAIL", predicted=None, drift_pct=None))
    assert v.failed and v.line().endswith("budget 0.095 ms; over by 0.005 ms") and "predicted" not in v.line()
    nb = LatencyVerdict.of({**_latency(), "budget_ms": None, "verdict": "NO BUDGET"})
    assert nb.line().endswith("budget none") and not nb.failed


def test_finalize_result_is_typed_and_prints_one_summary(tmp_path):
    report = {"arch_id": "abc", "accuracy": {"test": 81.234}, "files": ["model.onnx", "report.json"],
              "latency": _latency(), "int8": None, "lut": {"provenance": None}}
    r = FinalizeResult(tmp_path / "dist", report)
    assert r.latency.verdict == "PASS" and r.report is report
    assert not isinstance(r, Mapping)  # callers read the typed attributes (or .report), not a dict
    assert (r.arch_id, r.test_accuracy, r.files) == ("abc", 81.234, ["model.onnx", "report.json"])
    lines = r.lines()
    assert lines[0] == r.latency.line()
    assert lines[-1] == f"test accuracy 81.23 %; bundle: {tmp_path / 'dist'}/ (model.onnx, report.json)"
    q = {"target": True, "test_accuracy": 80.0, "fp32_test_accuracy": 81.0, "accuracy_delta_pct": -1.0,
         "top1_agreement_pct": 97.5}
    assert "top-1 agreement 97.5 %" in FinalizeResult(tmp_path, {**report, "int8": q}).lines()[1]


def test_measured_item_row_and_line():
    plain = MeasuredItem("model.onnx", "ort-cpu", _m(0.2))
    assert plain.line().startswith("model.onnx: measured median 0.200 ms") and "predicted" not in plain.line()
    assert "predicted_ms" not in plain.to_dict() and plain.to_dict()["median_ms"] == pytest.approx(0.2)
    item = MeasuredItem("a1", "ort-cpu", _m(0.2), 0.21, error_pct(0.21, 0.2), 1.234, "transferred from d.json")
    row = item.to_dict()
    assert (row["predicted_ms"], row["error_pct"], row["drift_corrected_error_pct"]) == (0.21, 5.0, 1.23)
    assert item.line().endswith("; predicted 0.210 ms (transferred from d.json) (+5.0 %, +1.2 % corrected for drift)")
    result = MeasureResult([plain, item], {"machine": "x86_64"})
    assert result.to_dict() == {"fingerprint": {"machine": "x86_64"}, "drift": None,
                                "results": [plain.to_dict(), row]}


def test_lut_build_result_lines_and_calibration_warning():
    calib = {"complete": True, "model": "affine", "fit_mape_pct": 1.5, "uncalibrated_mape_pct": 9.0,
             "data": [1] * 20, "loo_mape_pct": {"affine": 2.0}}
    r = LutBuildResult(Path("l.json"), 128, 256, 0, 3, 12.3, True, calib)
    assert r.lines() == ["LUT l.json: 128 entries (256 block measurements now, 0 resumed from the file; 3 entries "
                         "kept a later, calmer measurement) in 12 s; calibrated",
                         "calibration: model affine, fit MAPE 1.50 % (uncalibrated LUT sum 9.00 %) on 20 whole networks"]
    assert r.warning() is None
    poor = LutBuildResult(Path("l.json"), 128, 256, 0, 3, 12.3, True, {**calib, "loo_mape_pct": {"affine": 25.0}})
    assert "--recalibrate" in poor.warning()
    assert len(LutBuildResult(Path("l.json"), 1, 1, 0, 0, 1.0, False).lines()) == 1  # --no-calibrate: no line


def test_transfer_result_lines_and_warning():
    base = dict(path="t.json", donor="d.json", networks=20, measured_now=20, resumed=0, blocks_measured=0,
                loo_mape_pct=2.2, loo_within_10_pct=100.0, seconds=91.0, fit={"rho": 0.812},
                device_seconds={"total": 91.0, "networks": 80.0, "reference": 11.0, "blocks": 0.0})
    r = TransferResult(**base)
    (line,) = r.lines()
    assert "transferred from d.json with 20 networks measured here (20 now, 0 resumed); leave-one-out MAPE 2.2 %" in line
    assert line.endswith("this device takes 0.812x the donor's time overall") and r.warning() is None
    assert "--networks 40" in TransferResult(**{**base, "loo_mape_pct": 14.0}).warning()
    assert "no leave-one-out error" in TransferResult(**{**base, "networks": 1}).lines()[0]
    ridge = TransferResult(**{**base, "fit": {"rho": 0.812, "model": "per-type-ridge"}}).lines()[0]
    assert ridge.endswith("0.812x the donor's time overall; model: per-type ridge")
    recal = {"rho": 0.5, "model": "donor-blocks-recalibrated", "calibration_model": "donor+macs"}
    assert TransferResult(**{**base, "fit": recal}).lines()[0].endswith(
        "0.500x the donor's time overall; model: the donor's blocks recalibrated (donor+macs)")


def test_a_kind_declares_its_gene_ops_and_progressive_schedule():
    demo, cells = get_space("demo"), get_space("cell-demo")
    assert kind_part(demo, "gene_ops") is True and kind_part(cells, "gene_ops") is False
    assert callable(kind_part(demo, "progressive_caps")) and kind_part(cells, "progressive_caps") is None


def test_one_mac_count_for_every_kind():
    import random

    for name in ("demo", "cell-demo"):
        arch = get_space(name).sample(random.Random(3))
        layers = arch.layers()
        assert layer_costs(layers) == (sum(d.macs for d in layers), sum(d.params for d in layers))
        assert macs_m(arch) == sum(d.macs for d in layers) / 1e6


def test_search_result_prints_its_own_summary(tmp_path):
    """hwnas search prints SearchResult.lines(): the CLI neither formats the result nor reloads the LUT."""
    from hwnas.search.run import SearchResult, score_label

    r = SearchResult(tmp_path / "run", [], None, [], 3, 1.04, None, {"message": "2 generations run"},
                     {"total": {"latency_ms": 2}, "after_first_generation": {"latency_ms": 0}})
    assert r.lines(out="runs/x/") == [
        "search done: 3 archs evaluated in 1.0 s; front of 0 feasible archs; hypervolume 0",
        "no architecture met every constraint; the front is empty (see history.json)",
        "stopped: 2 generations run",
        "evaluations outside the constraints: latency_ms 2 (0 after the first generation)",
        "outputs: runs/x//front.json, front.csv, history.json, best.json, run.sqlite"]
    assert r.lines()[-1].startswith(f"outputs: {tmp_path / 'run'}/front.json")
    assert score_label("proxy:synflow") == "synflow score" and score_label("supernet") == "accuracy"


def test_an_uncertain_verdict_line_gives_the_spread_and_what_to_do():
    lat = {**_latency(), "budget_ms": 0.1, "verdict": "UNCERTAIN", "gap_ms": 0.0,
           "uncertain": {"spread": ["the budget 0.1 ms lies inside p10-p90 0.099-0.101 ms"],
                         "advice": "measure on an idle device"}}
    v = LatencyVerdict.of(lat)
    assert v.uncertain and not v.failed
    assert v.line().startswith("UNCERTAIN: measured median 0.100 ms")
    assert v.line().endswith("measured twice, too noisy to judge (the budget 0.1 ms lies inside p10-p90 "
                             "0.099-0.101 ms): measure on an idle device")
