"""openvino-cpu for real: OpenVINO's CPU plugin compiling what the ORT path exports, the IR finalize writes, and
the torch-free agent timing it over a real socket."""
import json

import numpy as np
import pytest
import torch

from conftest import cli_here, quick_lut
from hwnas.profilers import create_profiler, get_profiler_class
from hwnas.profilers._ort import export_onnx
from hwnas.spaces.blocks import LayerDesc

BLOCK = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=48, se=True, act="hswish")
pytestmark = pytest.mark.skipif(get_profiler_class("openvino-cpu")().availability() is not None,
                                reason="openvino is not installed (pip install 'hwnas[openvino]')")


def test_times_a_block_as_compiled_with_the_latency_hint_and_f32(quick_policy):
    from hwnas_agent import openvino_runtime as ovr

    p = create_profiler("openvino-cpu", policy=quick_policy, threads=2)
    m = p.measure(BLOCK.build(), BLOCK.input_shape)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.n >= 7
    fp = p.fingerprint()
    assert fp["profiler"] == "openvino-cpu" and fp["threads"] == 2 and fp["openvino"] and fp["openvino_device"]
    assert "cpu_flags" in fp and fp["openvino_config"] == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2,
                                                           "INFERENCE_PRECISION_HINT": "f32"}
    # what OpenVINO applied, read back from a compiled model (left alone it runs bf16 on a CPU with BF16)
    applied = ovr.applied(ovr.compile_model(export_onnx(BLOCK.build(), BLOCK.input_shape), 2))
    assert applied["PERFORMANCE_HINT"] == "LATENCY" and applied["INFERENCE_NUM_THREADS"] == "2"
    assert applied["INFERENCE_PRECISION_HINT"] == "<Type: 'float32'>" and applied["NUM_STREAMS"] == "1"


def test_openvino_runs_the_onnx_the_ort_path_exports_and_computes_what_torch_does():
    from hwnas_agent import openvino_runtime as ovr

    module = BLOCK.build().eval()
    x = np.random.default_rng(3).standard_normal(BLOCK.input_shape).astype(np.float32)
    compiled = ovr.compile_model(export_onnx(module, BLOCK.input_shape), 1)
    got = compiled([x])[compiled.outputs[0]]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_an_ir_file_is_timed_and_a_broken_one_is_one_line_exit_2(tmp_path, quick_policy):
    from hwnas.finalize.openvino_ir import export_ir

    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(export_onnx(BLOCK.build(), BLOCK.input_shape))
    xml, info = export_ir(onnx_path, tmp_path)
    assert xml.with_suffix(".bin").is_file() and info["weights"].startswith("f32")
    p = create_profiler("openvino-cpu", policy=quick_policy)
    assert p.measure_onnx(xml).median_ms > 0 and p.measure_onnx(onnx_path).median_ms > 0
    r = cli_here("measure", "--profiler", "openvino-cpu", "--quick", "--json", str(xml))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.xml"
    bad.write_text("<net>not a model</net>")
    bad.with_suffix(".bin").write_bytes(b"")
    r = cli_here("measure", "--profiler", "openvino-cpu", str(bad))
    assert r.returncode == 2 and "not an OpenVINO IR" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli_here("measure", "--profiler", "ort-cpu", str(xml))
    assert r.returncode == 2 and "times .onnx and .ort files, not model.xml" in r.stderr


def test_both_new_profilers_are_listed_with_their_availability():
    r = cli_here("profile", "--list")
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert r.returncode == 0 and "available" in lines["openvino-cpu"] and "litert-cpu" in lines
    r = cli_here("plugins", "--kind", "profiler", "--json")
    listed = {p["name"]: p["unavailable"] for p in json.loads(r.stdout)}
    assert listed["openvino-cpu"] is None and "litert-cpu" in listed


@pytest.mark.slow  # a whole LUT, fresh processes that must agree
def test_a_quick_lut_of_a_small_space_in_fresh_processes(small_space, tmp_path):
    lut = quick_lut("openvino-cpu", small_space, tmp_path / "ov.json")
    assert lut.fingerprint["openvino"] and lut.settings["openvino_config"]["PERFORMANCE_HINT"] == "LATENCY"


@pytest.mark.slow  # a LUT, a search and finalize, end to end
def test_finalize_writes_the_ir_checks_its_parity_and_times_it(demo, quick_policy, tiny_supernet, tmp_path):
    from hwnas.finalize import finalize
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.measuring.profiling import build_lut
    from hwnas.search import Constraints, run_search

    lut_path = tmp_path / "ov-demo.json"
    build_lut("openvino-cpu", demo, lut_path, resolutions=[24], profiler_options={"policy": quick_policy},
              calibrate=False, progress=False, command="pytest", processes=0)
    pred = latency_predictor(LUT.load(lut_path), demo)
    budget = pred.fastest()[1] * 1.5
    run = tmp_path / "search"
    run_search(lut_path, run, evaluator="supernet", evaluator_options={"checkpoint": str(tiny_supernet[0])},
               population=6, generations=1, seed=0, constraints=Constraints(budget_ms=budget), progress=False,
               command="pytest")
    result = finalize(run, tmp_path / "dist", processes=0, log=lambda *a, **k: None)
    report = result.report
    assert (tmp_path / "dist" / "model.xml").is_file() and (tmp_path / "dist" / "model.bin").is_file()
    ir = report["openvino_ir"]
    assert ir["parity"]["max_abs_diff"] <= ir["parity"]["tolerance"] and ir["parity"]["top1_agree"] == ir["parity"]["images"]
    lat = report["latency"]
    assert lat["profiler"] == "openvino-cpu" and lat["measured_file"].endswith("model.xml")
    assert lat["predicted_ms"] > 0 and lat["measured"]["median_ms"] > 0
