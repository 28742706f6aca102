import sys
import textwrap

import pytest
import torch

from hwnas.profilers import ProfilerConfigError
from hwnas.spaces.blocks import LayerDesc
from hwnas.profilers import ProviderFallbackError, create_profiler, get_profiler_class, list_profilers
from hwnas.profilers.base import Measurement, Profiler, ProfilerUnavailable
from hwnas.profilers.registry import BUILTIN

BLOCK = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=48, se=True, act="hswish")
FINGERPRINT_FIELDS = ("cpu_model", "cpu_count", "machine", "os", "python", "torch", "onnxruntime", "profiler",
                      "threads", "device")


def _skip_unless_available(name):
    reason = get_profiler_class(name)().availability()
    if reason:
        pytest.skip(f"{name} unavailable here: {reason}")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_measures_a_real_block(name, quick_policy):
    _skip_unless_available(name)
    profiler = create_profiler(name, policy=quick_policy)
    assert isinstance(profiler, Profiler) and profiler.name == name
    try:
        m = profiler.measure(BLOCK.build(), BLOCK.input_shape)
    except ProfilerUnavailable as e:  # litert-cpu without its converter: it times .tflite files only (its own tests)
        pytest.skip(f"{name} cannot time PyTorch blocks here: {e}")
    assert isinstance(m, Measurement)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.n >= 5 and m.std_ms >= 0 and m.cv >= 0
    fp = profiler.fingerprint()
    for field in FINGERPRINT_FIELDS:
        assert field in fp, field
    assert fp["profiler"] == name and fp["threads"] == 1


def test_bigger_block_measures_slower(quick_policy):
    small = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=32)
    big = LayerDesc("mbconv", 16, 16, 64, kernel=7, stride=1, mid=96)
    p = create_profiler("ort-cpu", policy=quick_policy)
    # ordering only (~40x the MACs): a sanity check that something real was timed, not a speed claim
    assert p.measure(big.build(), big.input_shape).median_ms > p.measure(small.build(), small.input_shape).median_ms


def test_torch_cpu_has_no_page_fault_storm():
    """The glibc-malloc trap: without mallopt this block faulted ~1,300 times per call here."""
    d = LayerDesc("mbconv", 24, 24, 56, kernel=3, stride=1, mid=144, act="relu6")
    m = create_profiler("torch-cpu").measure(d.build(), d.input_shape)
    assert m.minflt_per_call < 20, m
    fp = create_profiler("torch-cpu").settings()
    assert "mallopt" in fp["malloc"] or "not glibc" in fp["malloc"]


def test_torch_cuda_reports_why_unavailable():
    p = create_profiler("torch-cuda")
    if torch.cuda.is_available():
        assert p.availability() is None
    else:
        assert "no CUDA GPU" in p.availability()
        with pytest.raises(RuntimeError, match="unavailable"):
            p.measure(BLOCK.build(), BLOCK.input_shape)


@pytest.mark.cuda
def test_torch_cuda_measures_on_gpu(quick_policy):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine (torch.cuda.is_available() is False)")
    p = create_profiler("torch-cuda", policy=quick_policy)
    m = p.measure(BLOCK.build(), BLOCK.input_shape)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert p.fingerprint()["gpu"]


def test_provider_fallback_is_detected(quick_policy):
    """Asking ORT for a provider this build lacks must fail loudly, not time the CPU fallback."""
    p = create_profiler("ort-cpu", policy=quick_policy, providers=("XnnpackExecutionProvider", "CPUExecutionProvider"))
    import onnxruntime as ort

    if "XnnpackExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has XNNPACK")
    with pytest.raises(ProviderFallbackError, match="did not use \\['XnnpackExecutionProvider'\\]"):
        p.measure(BLOCK.build(), BLOCK.input_shape)


def test_ort_mobile_records_providers_it_used():
    fp = create_profiler("ort-mobile").fingerprint()
    assert fp["providers_used"][-1] == "CPUExecutionProvider"
    assert "ort" in fp["format"]


def test_list_profilers_reports_each_with_reason():
    infos = {i.name: i for i in list_profilers()}
    assert set(BUILTIN) <= set(infos)
    assert infos["ort-cpu"].unavailable is None
    if not torch.cuda.is_available():
        assert "CUDA" in infos["torch-cuda"].unavailable


def test_unknown_profiler_names_the_known_ones():
    with pytest.raises(ProfilerConfigError, match="unknown profiler 'npu'.*ort-cpu"):
        get_profiler_class("npu")


def test_outside_plugin_is_found_through_a_real_entry_point(tmp_path, monkeypatch, quick_policy):
    """Install a tiny distribution (dist-info with entry_points.txt) and let importlib.metadata find it."""
    (tmp_path / "hwnas_fake_npu.py").write_text(textwrap.dedent('''
        from hwnas.profilers.torch_cpu import TorchCPUProfiler

        class FakeNPU(TorchCPUProfiler):
            name = "fake-npu"
    '''))
    dist = tmp_path / "hwnas_fake_npu-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hwnas-fake-npu\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hwnas.profilers]\nfake-npu = hwnas_fake_npu:FakeNPU\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    infos = {i.name: i for i in list_profilers()}
    assert infos["fake-npu"].source == "hwnas-fake-npu" and infos["fake-npu"].unavailable is None
    p = create_profiler("fake-npu", policy=quick_policy)
    assert p.measure(BLOCK.build(), BLOCK.input_shape).median_ms > 0
    sys.modules.pop("hwnas_fake_npu", None)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_capabilities_are_declared_and_kept(name):
    """Callers ask a profiler what it can do (never its name): each flag has the method behind it."""
    from hwnas.profilers import BaseProfiler, OnnxFileProfiler, capability

    cls = get_profiler_class(name)
    assert issubclass(cls, BaseProfiler)
    onnx, ort = capability(cls, "measures_onnx_files"), capability(cls, "measures_ort_format")
    ir, tflite = capability(cls, "measures_openvino_ir"), capability(cls, "measures_tflite_files")
    assert onnx == (name.startswith("ort-") or name == "openvino-cpu") and ort == (name == "ort-mobile")
    assert ir == (name == "openvino-cpu") and tflite == (name == "litert-cpu")
    assert not ort or onnx
    if onnx or tflite:
        assert isinstance(cls(), OnnxFileProfiler) if onnx else callable(cls().measure_onnx)
    else:
        with pytest.raises(ProfilerConfigError, match="not ONNX files"):
            cls().measure_onnx("model.onnx")


def test_a_bare_protocol_plugin_has_no_capabilities():
    from hwnas.profilers import capability

    class Bare:
        name = "bare"

        def availability(self):
            return None

        def fingerprint(self):
            return {}

        def measure(self, module, input_shape):
            raise NotImplementedError

    assert isinstance(Bare(), Profiler)
    assert not capability(Bare(), "measures_onnx_files") and not capability(Bare, "measures_ort_format")
    with pytest.raises(ValueError, match="unknown profiler capability"):
        capability(Bare, "runs_fast")


def test_a_plugin_written_before_the_flags_still_times_onnx_files():
    """The old rule was "has measure_onnx": a plugin that defines it but never heard of the flag keeps
    timing exported files (finalize would otherwise time the torch module instead, silently); an explicit
    flag wins, and the base class's stub is no capability."""
    from hwnas.profilers import BaseProfiler, capability

    class Old:  # protocol only, no flags
        name = "old"

        def measure_onnx(self, path):
            raise NotImplementedError

    class OldSub(BaseProfiler):  # subclass, overrides measure_onnx, no flag
        def measure_onnx(self, path):
            raise NotImplementedError

    class Declined(OldSub):
        measures_onnx_files = False

    assert capability(Old(), "measures_onnx_files") and capability(OldSub, "measures_onnx_files")
    assert not capability(Declined, "measures_onnx_files") and not capability(BaseProfiler, "measures_onnx_files")
    assert not capability(Old, "measures_ort_format")


def test_the_wheel_installs_no_top_level_profilers_package():
    """pyproject maps the repository's profilers/ folder to hwnas.profilers; every package folder is listed."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {"hwnas.profilers": "profilers", "hwnas_agent": "agent/hwnas_agent"}
    listed = set(cfg["packages"])
    assert "profilers" not in listed and all(p.startswith("hwnas") for p in listed)
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "hwnas").rglob("__init__.py")}
    assert on_disk | {"hwnas.profilers", "hwnas_agent"} <= listed | {"hwnas.data", "hwnas.spaces"}, \
        f"add {sorted(on_disk - listed)} to [tool.setuptools] packages in pyproject.toml"
    import hwnas.profilers

    assert Path(hwnas.profilers.__file__).parent == root / "profilers"
