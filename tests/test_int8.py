"""int8 as a target: real QDQ models quantized by onnxruntime, a LUT of one precision, nothing compared across.

Fast by default (blocks of the two-stage demo space at 28 px, quick timing, in this process); the finalize of
an int8 search and a killed int8 build are marked slow. No test asserts a timing.
"""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import onnx
import pytest

from hwnas.app.cli import main
from hwnas.latency.lut import LUT, LUTError
from hwnas.measuring.measure import available_profiler
from hwnas.measuring.precision import PrecisionMismatch, model_precision
from hwnas.profilers import ProfilerConfigError, create_profiler
from hwnas.profilers._ort import export_onnx
from hwnas.profilers._quant import choose_settings
from hwnas.measuring.profiling import build_lut

from conftest import ROOT, saved


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def luts(tmp_path_factory, small_space, quick_policy):
    """An fp32 and an int8 ort-cpu LUT of the small space at 28 px (20 blocks each), built in this process."""
    d = tmp_path_factory.mktemp("int8")
    paths = {}
    for precision in ("fp32", "int8"):
        opts = {"policy": quick_policy, "pin_cpu": None, **({"precision": "int8"} if precision == "int8" else {})}
        paths[precision] = d / f"{precision}.json"
        build_lut("ort-cpu", small_space, paths[precision], resolutions=[28], profiler_options=opts,
                  calibrate=False, progress=False, processes=0, command="pytest")
    return paths


def test_quantization_types_follow_the_device():
    x86 = choose_settings("x86_64", "avx2 fma")
    assert (x86.activations, x86.weights, x86.per_channel, x86.reduce_range) == ("uint8", "int8", True, True)
    assert choose_settings("x86_64", "avx2 avx512_vnni").reduce_range is False
    arm = choose_settings("aarch64", "asimd dotprod")
    assert (arm.activations, arm.weights, arm.reduce_range) == ("int8", "int8", False)


def test_profilers_record_their_precision(quick_policy):
    fp32 = create_profiler("ort-cpu", policy=quick_policy, pin_cpu=None)
    assert fp32.settings()["precision"] == "fp32" and "quantization" not in fp32.settings()
    int8 = create_profiler("ort-mobile", policy=quick_policy, pin_cpu=None, precision="int8")
    q = int8.settings()["quantization"]
    assert int8.settings()["precision"] == "int8" and q["format"] == "QDQ static" and q["per_channel"] is True
    assert "random" in q["calibration_data"] or "standard-normal" in q["calibration_data"]
    with pytest.raises(ProfilerConfigError, match="precision must be one of"):
        create_profiler("ort-cpu", precision="int4")
    with pytest.raises(PrecisionMismatch, match="fp32 PyTorch modules only"):
        available_profiler("torch-cpu", {"precision": "int8"})


def test_int8_models_are_real_qdq_models(small_space, quick_policy):
    d = small_space.all_layers([28])[3]
    cpu = create_profiler("ort-cpu", policy=quick_policy, pin_cpu=None, precision="int8")
    data, fmt = cpu.model_file(d.build(), d.input_shape)
    model = onnx.load_from_string(data)
    ops = {n.op_type for n in model.graph.node}
    assert fmt == "onnx" and {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
               and any(a.name == "axis" for a in n.attribute)]
    assert weights, "per-channel weights carry an axis on their DequantizeLinear"
    assert model_precision(data) == "int8" and model_precision(export_onnx(d.build(), d.input_shape)) == "fp32"
    ort_bytes, fmt = create_profiler("ort-mobile", policy=quick_policy, pin_cpu=None,
                                     precision="int8").model_file(d.build(), d.input_shape)
    assert fmt == "ort" and model_precision(ort_bytes) == "int8"
    assert cpu.measure(d.build(), d.input_shape).median_ms > 0


def test_an_int8_lut_records_and_resumes_and_never_mixes(luts, small_space, quick_policy, tmp_path):
    lut = LUT.load(luts["int8"])
    assert lut.precision == "int8" and lut.settings["quantization"]["activations"] in ("uint8", "int8")
    assert LUT.load(luts["fp32"]).precision == "fp32"
    out = tmp_path / "int8.json"
    data = json.loads(luts["int8"].read_text())
    dropped = sorted(data["entries"])[:3]
    for k in dropped:
        del data["entries"][k]
    out.write_text(json.dumps(data))
    opts = {"policy": quick_policy, "pin_cpu": None, "precision": "int8"}
    report = build_lut("ort-cpu", small_space, out, resolutions=[28], profiler_options=opts, calibrate=False,
                       progress=False, processes=0)
    assert report.measured == 3 and set(dropped) <= set(LUT.load(out).entries)
    with pytest.raises(LUTError, match="is an int8 LUT and this run measures fp32: a LUT never mixes precisions"):
        build_lut("ort-cpu", small_space, out, resolutions=[28], profiler_options={**opts, "precision": "fp32"},
                  calibrate=False, progress=False, processes=0)
    rc, _, err = _cli("profile", "--profiler", "ort-cpu", "--space-file", _space_file(small_space, tmp_path),
                      "--resolutions", "28", "--quick", "--no-calibrate", "--processes", "0", "--pin-cpu", "none",
                      "--out", out)
    assert rc == 2 and "never mixes precisions; run with --precision int8" in err and len(err.splitlines()) == 1


def test_an_old_lut_without_precision_reads_fp32(luts, tmp_path):
    data = json.loads(luts["fp32"].read_text())
    del data["settings"]["precision"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert LUT.load(old).precision == "fp32"


def _space_file(space, tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space.to_dict()))
    return path


def test_measure_refuses_an_fp32_model_against_an_int8_lut(luts, small_space, tmp_path):
    d = small_space.all_layers([28])[0]
    fp32 = tmp_path / "block.onnx"
    fp32.write_bytes(export_onnx(d.build(), d.input_shape))
    rc, _, err = _cli("measure", fp32, "--lut", luts["int8"])
    assert rc == 2 and "model block.onnx is fp32 but the LUT" in err and "is int8" in err
    # the refusal is one line; a LUT its build found noisy adds its two-line quality warning before it
    refusal = [line for line in err.strip().splitlines() if not line.startswith(("WARNING: ", "  "))]
    assert len(refusal) == 1 and "is fp32 but the LUT" in refusal[0]
    rc, _, err = _cli("measure", "--lut", luts["int8"], "--precision", "fp32", "--sample", "1")
    assert rc == 2 and "is int8 but --precision is fp32" in err


def test_predict_compares_fp32_with_int8(luts):
    rc, out, _ = _cli("predict", "--lut", luts["fp32"], "--lut", luts["int8"], "--sample", "2", "--resolution", "28",
                      "--json")
    assert rc == 0
    c = json.loads(out)
    assert [lut["precision"] for lut in c["luts"]] == ["fp32", "int8"] and c["same_device"] is True
    for n in c["networks"]:
        assert len(n["predicted_ms"]) == 2 and all(v > 0 for v in n["predicted_ms"])
        assert abs(n["ratio_last_over_first"] - n["predicted_ms"][1] / n["predicted_ms"][0]) < 1e-3
        assert n["blocks"] and all(len(b["ms"]) == 2 for b in n["blocks"])
    rc, out, _ = _cli("predict", "--lut", luts["fp32"], "--lut", luts["int8"], "--sample", "1", "--resolution", "28",
                      "--breakdown")
    assert rc == 0 and "fp32" in out and "int8/fp32" in out and "not measurements" in out


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, demo, tiny_supernet, quick_policy):
    """A search over the demo space (24 px) priced by an int8 ort-cpu LUT, scored by the tiny supernet."""
    from hwnas.latency.predict import MBv3LatencyPredictor
    from hwnas.search import Constraints, run_search

    d = tmp_path_factory.mktemp("int8run")
    lut_path = d / "demo-int8.json"
    build_lut("ort-cpu", demo, lut_path, resolutions=[24],
              profiler_options={"policy": quick_policy, "pin_cpu": None, "precision": "int8"},
              calibrate=False, progress=False, processes=0, command="pytest int8_run")
    pred = MBv3LatencyPredictor(LUT.load(lut_path))
    _, fastest = pred.fastest()
    out = d / "search"
    run_search(lut_path, out, evaluator="supernet", evaluator_options={"checkpoint": str(tiny_supernet[0])},
               population=6, generations=1, seed=0, constraints=Constraints(budget_ms=fastest * 3),
               progress=False, command="pytest int8_run")
    return out, lut_path


@pytest.mark.slow
def test_finalize_of_an_int8_search_judges_the_int8_model(int8_run, tmp_path):
    from hwnas.finalize import finalize
    from hwnas.latency.predict import latency_predictor
    from hwnas.search.runs import read_run

    run_dir, lut_path = int8_run
    assert read_run(run_dir).config["lut_precision"] == "int8"
    r = finalize(run_dir, tmp_path / "b", processes=0, command="pytest", log=lambda s: None)
    lat, q = r.report["latency"], r.int8
    assert lat["precision"] == "int8" and lat["measured_file"].endswith("model.int8.onnx")
    lut = LUT.load(lut_path)
    arch = lut.search_space().arch_from_dict(r.report["arch"])
    assert lat["predicted_ms"] == pytest.approx(latency_predictor(lut, arch.space).predict(arch))
    from hwnas.finalize.verdict import decide
    from hwnas.profilers import Measurement

    assert lat["verdict"] == decide(Measurement(**lat["measured"]), lat["budget_ms"]).verdict  # UNCERTAIN if noisy
    assert q["target"] is True and q["calibration_data"].endswith("training images")
    assert q["settings"] == {k: v for k, v in lut.settings["quantization"].items() if k != "calibration_data"}
    assert 0 <= q["top1_agreement_pct"] <= 100 and q["accuracy_delta_pct"] == pytest.approx(
        q["test_accuracy"] - q["fp32_test_accuracy"])
    for name in ("model.onnx", "model.int8.onnx", "model.int8.ort"):
        assert (tmp_path / "b" / name).is_file()
    assert model_precision(tmp_path / "b" / "model.int8.ort") == "int8"
    assert "| precision | int8" in (tmp_path / "b" / "report.md").read_text()
    with pytest.raises(PrecisionMismatch, match="fp32 PyTorch modules only"):  # refused before any export
        finalize(run_dir, tmp_path / "t", processes=0, profiler="torch-cpu", log=lambda s: None)
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_a_killed_int8_build_resumes(tmp_path, small_space):
    out, space_file = tmp_path / "lut.json", _space_file(small_space, tmp_path)
    cmd = [sys.executable, str(ROOT / "tools" / "profile_device.py"), "--profiler", "ort-cpu", "--precision", "int8",
           "--space-file", str(space_file), "--resolutions", "28", "--quick", "--no-calibrate", "--pin-cpu", "none",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(saved(out, "entries")) < 5:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no block was saved"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    partial = len(saved(out, "entries"))
    assert LUT.load(out).precision == "int8"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lut = LUT.load(out)
    assert lut.precision == "int8" and set(lut.entries) == {d.key for d in small_space.all_layers([28])}
    resumed = int(done.stdout.split(" resumed from the file")[0].rsplit(", ", 1)[-1])
    assert resumed >= partial


@pytest.mark.slow
def test_the_device_agent_times_int8_models(agent_venv, small_space, quick_policy, tmp_path):
    """A torch-free agent (onnxruntime + numpy only) times the QDQ models the host quantized, for both ORT
    profilers; the quantization is chosen for the agent's device (its fingerprint)."""
    from test_agent import Agent

    token = tmp_path / "token"
    token.write_text("0123456789abcdef-test-token\n")
    agent = Agent(agent_venv, tmp_path / "work", token).start()
    try:
        d = small_space.all_layers([28])[4]
        for name in ("ort-cpu", "ort-mobile"):
            p = create_profiler(name, policy=quick_policy, precision="int8", device=agent.url, token_file=str(token))
            assert p.availability() is None
            fp = p.remote.fingerprint()
            assert p.settings()["quantization"] == {**p.settings()["quantization"],
                                                    **choose_settings(fp["machine"], fp["cpu_flags"]).to_dict()}
            assert p.measure(d.build(), d.input_shape).median_ms > 0
    finally:
        agent.kill()
