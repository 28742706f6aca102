"""GPU latency a LUT can predict: torch-cuda-graph, fp16/fp32, a batch size, and one batch size per LUT.

What the CPU can check runs everywhere: the options are validated before any GPU work, the settings a LUT
would record, that a LUT is never resumed, compared or measured at another batch size (one line, exit 2), and
the reason the profilers give where there is no GPU. The CUDA paths are marked ``cuda`` and skip with the
reason here. No test asserts a timing.
"""
import json

import pytest
import torch

from hwnas.latency.lut import LUT, LUTError
from hwnas.measuring.measure import available_profiler, lut_profiler_options
from hwnas.measuring.precision import BatchSizeMismatch, PrecisionMismatch
from hwnas.measuring.profiling import build_lut
from hwnas.profilers import ProfilerConfigError, create_profiler, get_profiler_class
from hwnas.profilers.torch_cuda import batched
from hwnas.spaces.blocks import LayerDesc

from conftest import cli_here

CUDA = torch.cuda.is_available()
NO_GPU = "no CUDA GPU on this machine (torch.cuda.is_available() is False): runs in scripts/gpu_device_run.sh"
BLOCK = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=48, se=True, act="hswish")


def _edited(path, tmp_path, name, **settings):
    """A copy of the LUT at ``path`` whose settings say ``settings`` (as a GPU-built LUT's would)."""
    data = json.loads(path.read_text())
    data["settings"].update(settings)
    out = tmp_path / name
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("name", ["torch-cuda", "torch-cuda-graph"])
def test_the_cuda_profilers_record_precision_and_batch_size(name):
    p = create_profiler(name, precision="fp16", batch_size=32)
    s = p.settings()
    assert s["precision"] == "fp16" and s["batch_size"] == 32 and "half()" in s["mode"]
    assert s["timer"] == "cuda events" and isinstance(s["cudnn_allow_tf32"], bool)
    assert ("cuda graph" in s["mode"]) == (name == "torch-cuda-graph")
    d = create_profiler(name).settings()
    assert d["precision"] == "fp32" and d["batch_size"] == 1
    assert p.fingerprint()["batch_size"] == 32  # the fingerprint carries the settings; no GPU needed to read them


@pytest.mark.parametrize("options, match", [
    ({"precision": "int8"}, "precision must be one of \\['fp32', 'fp16'\\].*ort-cpu"),
    ({"precision": "bf16"}, "precision must be one of"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"batch_size": True}, "batch_size must be a whole number"),
])
def test_bad_options_are_refused_before_any_gpu_work(options, match):
    with pytest.raises(ProfilerConfigError, match=match):
        create_profiler("torch-cuda-graph", **options)


def test_the_batch_replaces_the_leading_one_of_every_shape():
    assert batched((1, 16, 16, 16), 32) == (32, 16, 16, 16)
    assert batched((32, 3, 8, 8), 32) == (32, 3, 8, 8)
    with pytest.raises(ProfilerConfigError, match="does not start with batch 1"):
        batched((4, 3, 8, 8), 32)


def test_only_profilers_that_take_them_get_fp16_or_a_batch():
    with pytest.raises(BatchSizeMismatch, match="'torch-cpu' times batch 1 only; batch 32 needs a profiler that "
                                                 "batches \\(torch-cuda, torch-cuda-graph\\)"):
        available_profiler("torch-cpu", {"batch_size": 32})
    with pytest.raises(BatchSizeMismatch, match="'ort-cpu' times batch 1 only"):
        available_profiler("ort-cpu", {"batch_size": 32})
    with pytest.raises(PrecisionMismatch, match="'ort-cpu' times fp32, int8 models only; fp16 needs a profiler "
                                                "that times it \\(torch-cuda, torch-cuda-graph\\)"):
        available_profiler("ort-cpu", {"precision": "fp16"})
    with pytest.raises(PrecisionMismatch, match="'torch-cuda-graph' times fp32, fp16 PyTorch modules only; int8"):
        available_profiler("torch-cuda-graph", {"precision": "int8"})


def test_options_as_the_lut_was_built_carry_its_batch_and_precision():
    lut = LUT(profiler="torch-cuda-graph", fingerprint={}, space={},
              settings={"threads": 1, "pinning": "not pinned", "precision": "fp16", "batch_size": 32})
    assert lut.batch_size == 32 and lut.precision == "fp16" and ", batch 32" in lut.label
    assert lut_profiler_options(lut) == {"threads": 1, "pin_cpu": None, "precision": "fp16", "batch_size": 32}
    old = LUT(profiler="torch-cuda", fingerprint={}, space={}, settings={"threads": 1, "pinning": "not pinned"})
    assert old.batch_size == 1 and old.precision == "fp32" and "batch" not in old.label  # the shipped H100 LUT
    assert lut_profiler_options(old) == {"threads": 1, "pin_cpu": None}


def test_unavailable_without_a_gpu_says_why_and_what_to_do():
    if CUDA:
        pytest.skip("this machine has a CUDA GPU")
    for name in ("torch-cuda", "torch-cuda-graph"):
        reason = get_profiler_class(name)().availability()
        assert "sees no CUDA GPU" in reason
        assert ("CPU-only build" in reason and "gpu_device_run.sh" in reason) if torch.version.cuda is None \
            else "nvidia-smi" in reason
    r = cli_here("profile", "--profiler", "torch-cuda-graph", "--precision", "fp16", "--batch-size", "32",
                 "--space", "demo", "--out", "/tmp/hwnas-never.json")
    assert r.returncode == 3 and "'torch-cuda-graph' is unavailable here" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_refuses_bad_batch_and_precision_flags_in_one_line():
    r = cli_here("profile", "--profiler", "torch-cpu", "--batch-size", "0", "--space", "demo", "--out", "/x.json")
    assert r.returncode == 2 and "--batch-size" in r.stderr
    r = cli_here("profile", "--profiler", "torch-cpu", "--batch-size", "8", "--space", "demo", "--out", "/x.json")
    assert r.returncode == 2 and "times batch 1 only" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli_here("profile", "--profiler", "ort-cpu", "--precision", "fp16", "--space", "demo", "--out", "/x.json")
    assert r.returncode == 2 and "fp16 needs a profiler that times it" in r.stderr


def test_a_lut_is_never_resumed_at_another_batch_size(demo_lut_path, demo, tmp_path, quick_policy):
    lut32 = _edited(demo_lut_path, tmp_path, "b32.json", batch_size=32)
    assert LUT.load(lut32).batch_size == 32
    with pytest.raises(LUTError, match="is a batch-32 LUT and this run measures batch 1: a LUT never mixes batch "
                                       "sizes; run with --batch-size 32 to resume it"):
        build_lut("torch-cpu", demo, lut32, resolutions=[24], profiler_options={"policy": quick_policy},
                  calibrate=False, progress=False, processes=0)


def test_measure_and_compare_refuse_another_batch_size(demo_lut_path, tmp_path):
    lut32 = _edited(demo_lut_path, tmp_path, "b32.json", batch_size=32)
    r = cli_here("measure", "--lut", str(lut32), "--batch-size", "1", "--sample", "1")
    assert r.returncode == 2 and "is at batch 32 but --batch-size is at batch 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli_here("predict", "--lut", str(demo_lut_path), "--lut", str(lut32), "--sample", "1", "--resolution", "24")
    assert r.returncode == 2 and "a batch-1 number is not compared with a batch-32 one" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_predictions_say_the_lut_batch_size(demo_lut_path, tmp_path):
    lut32 = _edited(demo_lut_path, tmp_path, "b32.json", batch_size=32)
    r = cli_here("predict", "--lut", str(lut32), "--sample", "1", "--resolution", "24")
    assert r.returncode == 0 and "batch 32" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("bad", [0, -1, "32", True, 1.5])
def test_a_lut_with_a_bad_batch_size_is_refused_on_load(demo_lut_path, tmp_path, bad):
    with pytest.raises(LUTError, match="settings.batch_size must be a whole number >= 1"):
        LUT.load(_edited(demo_lut_path, tmp_path, "bad.json", batch_size=bad))


# -- on a GPU (scripts/gpu_device_run.sh runs these: pytest -m cuda) ---------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason=NO_GPU)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_captured_graph_replays_what_eager_computes(precision):
    from hwnas.profilers.torch_cuda import capture_graph

    dtype = torch.float16 if precision == "fp16" else torch.float32
    module = BLOCK.build().eval().to("cuda", dtype=dtype)
    x = torch.randn(4, *BLOCK.input_shape[1:], device="cuda", dtype=dtype)
    with torch.no_grad():
        want = module(x).clone()
        graph, out = capture_graph(module, x)
        x.copy_(x)  # the static input, replayed where it is
        graph.replay()
        torch.cuda.synchronize()
    tol = 1e-2 if precision == "fp16" else 1e-4
    assert torch.allclose(out.float(), want.float(), atol=tol, rtol=tol)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason=NO_GPU)
@pytest.mark.parametrize("name", ["torch-cuda", "torch-cuda-graph"])
@pytest.mark.parametrize("precision, batch", [("fp32", 1), ("fp16", 8)])
def test_the_cuda_profilers_measure_blocks_and_networks(name, precision, batch, quick_policy, demo):
    from hwnas.spaces.blocks import build_model

    p = create_profiler(name, policy=quick_policy, precision=precision, batch_size=batch)
    m = p.measure(BLOCK.build(), BLOCK.input_shape)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.n >= 5
    a = demo.smallest()
    net = p.measure(build_model(a), (1, demo.in_channels, a.resolution, a.resolution))
    assert net.median_ms > 0 and p.fingerprint()["gpu"]


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason=NO_GPU)
def test_a_gpu_lut_records_and_keeps_its_batch(small_space, tmp_path, quick_policy):
    out = tmp_path / "g.json"
    opts = {"policy": quick_policy, "pin_cpu": None, "precision": "fp16", "batch_size": 4}
    build_lut("torch-cuda-graph", small_space, out, resolutions=[28], profiler_options=opts, calibrate=False,
              progress=False, processes=0)
    lut = LUT.load(out)
    assert lut.batch_size == 4 and lut.precision == "fp16" and lut.profiler == "torch-cuda-graph"
    with pytest.raises(LUTError, match="never mixes batch sizes"):
        build_lut("torch-cuda-graph", small_space, out, resolutions=[28], calibrate=False, progress=False,
                  processes=0, profiler_options={**opts, "batch_size": 1})
    with pytest.raises(LUTError, match="never mixes precisions"):
        build_lut("torch-cuda-graph", small_space, out, resolutions=[28], calibrate=False, progress=False,
                  processes=0, profiler_options={**opts, "precision": "fp32"})
