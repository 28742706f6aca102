"""litert-cpu for real: LiteRT's Interpreter timing .tflite files (built here from LiteRT's own flatbuffer schema, no
converter needed), and, where litert-torch is installed, PyTorch blocks converted and timed."""
import json

import numpy as np
import pytest

from _tflite import dense_hardswish, reference
from conftest import cli_here, quick_lut
from hwnas.profilers import ProfilerConfigError, create_profiler, get_profiler_class
from hwnas.spaces.blocks import LayerDesc

pytestmark = pytest.mark.skipif(get_profiler_class("litert-cpu")().availability() is not None,
                                reason="ai-edge-litert is not installed (pip install 'hwnas[litert]')")
needs_converter = pytest.mark.skipif(__import__("hwnas.profilers.litert_cpu", fromlist=["x"]).converter_version()
                                     is None, reason="litert-torch is not installed (the .tflite converter)")
BLOCK = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=48, se=True, act="hswish")


@pytest.fixture
def tflite(tmp_path):
    data, w, b = dense_hardswish()
    path = tmp_path / "dense.tflite"
    path.write_bytes(data)
    return path, w, b


def test_the_interpreter_runs_the_file_as_its_math_says(tflite):
    from hwnas_agent import litert_runtime as lr

    path, w, b = tflite
    for xnnpack in (True, False):
        it = lr.interpreter(path.read_bytes(), 1, xnnpack)
        x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        assert np.abs(it.get_tensor(it.get_output_details()[0]["index"]) - reference(x, w, b)).max() < 1e-4


@pytest.mark.parametrize("xnnpack", [True, False])
def test_times_a_tflite_file_with_the_settings_in_its_fingerprint(tflite, quick_policy, xnnpack):
    p = create_profiler("litert-cpu", policy=quick_policy, threads=2, xnnpack=xnnpack)
    m = p.measure_onnx(tflite[0])
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.n >= 7
    fp = p.fingerprint()
    assert fp["profiler"] == "litert-cpu" and fp["threads"] == 2 and fp["ai_edge_litert"] and fp["xnnpack"] is xnnpack
    assert fp["kernels"] == ("XNNPACK delegate" if xnnpack else "built-in kernels (no default delegate)")
    with pytest.raises(ProfilerConfigError, match="times .tflite files"):
        p.measure_onnx(tflite[0].with_suffix(".onnx"))


def test_the_cli_measures_a_tflite_file_and_refuses_bad_ones_in_one_line(tflite, tmp_path):
    r = cli_here("measure", "--profiler", "litert-cpu", "--quick", "--json", str(tflite[0]))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["median_ms"] > 0
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\x00" * 8)  # the identifier, then nothing a model needs
    r = cli_here("measure", "--profiler", "litert-cpu", str(bad))
    assert r.returncode == 2 and "not a .tflite model LiteRT can time" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07")
    r = cli_here("measure", "--profiler", "litert-cpu", str(onnx))
    assert r.returncode == 2 and "times .tflite files, not m.onnx" in r.stderr


def test_without_the_converter_a_block_is_refused_saying_what_to_install(quick_policy):
    from hwnas.profilers import ProfilerUnavailable
    from hwnas.profilers.litert_cpu import converter_version

    if converter_version() is not None:
        pytest.skip("litert-torch is installed here: blocks are converted (test_a_block_is_converted_...)")
    with pytest.raises(ProfilerUnavailable, match="litert-torch"):
        create_profiler("litert-cpu", policy=quick_policy).measure(BLOCK.build(), BLOCK.input_shape)


@needs_converter
def test_a_block_is_converted_computes_what_torch_does_and_is_timed(quick_policy):
    import torch

    from hwnas_agent import litert_runtime as lr
    from hwnas.profilers.litert_cpu import to_tflite

    module = BLOCK.build().eval()
    it = lr.interpreter(to_tflite(module, BLOCK.input_shape), 1)
    x = np.random.default_rng(2).standard_normal(BLOCK.input_shape).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert np.abs(it.get_tensor(it.get_output_details()[0]["index"]) - want).max() < 1e-4
    assert create_profiler("litert-cpu", policy=quick_policy).measure(module, BLOCK.input_shape).median_ms > 0


@needs_converter
@pytest.mark.slow  # a whole LUT, every block converted
def test_a_quick_lut_of_a_small_space(small_space, tmp_path):
    lut = quick_lut("litert-cpu", small_space, tmp_path / "litert.json")
    assert lut.settings["xnnpack"] is True and lut.fingerprint["ai_edge_litert"]


def test_no_xnnpack_is_a_flag_and_a_litert_lut_keeps_it(tflite):
    from types import SimpleNamespace

    from hwnas.measuring.measure import lut_profiler_options

    r = cli_here("measure", "--profiler", "litert-cpu", "--quick", "--no-xnnpack", "--json", str(tflite[0]))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fingerprint"]["kernels"].startswith("built-in kernels")
    lut = SimpleNamespace(settings={"threads": 1, "pinning": "not pinned", "xnnpack": False}, precision="fp32",
                          batch_size=1, calibration=None, reference=None)
    assert lut_profiler_options(lut)["xnnpack"] is False
    r = cli_here("measure", "--profiler", "ort-cpu", "--no-xnnpack", str(tflite[0]))
    assert r.returncode == 2 and "takes no option(s) ['xnnpack']" in r.stderr
