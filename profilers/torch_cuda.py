"""PyTorch on a CUDA GPU, timed with CUDA events: eager (``torch-cuda``) or captured CUDA graphs
(``torch-cuda-graph``), fp32 or fp16, at a batch size.

Both take ``precision`` (``fp32``, ``fp16``) and ``batch_size`` (N >= 1). fp16 is ``module.half()`` and a half
input, not autocast: weights and activations are fp16 throughout, as an fp16 deployment (TensorRT, an fp16 ONNX
model) runs them, with no cast kernels. Autocast would recast every weight on every call (its cache lives only
inside one autocast region) and keep some ops in fp32 by its own lists: a mix no deployment ships.

The batch size replaces the leading 1 of every input shape a profiler is given (a block's or a whole network's),
so a LUT built at batch 32, its calibration, its fidelity and every measurement made "as the LUT was built" are
all at batch 32, and its numbers are milliseconds per batch of 32.

``torch-cuda-graph`` is its own profiler, not an option of ``torch-cuda``: the LUT's ``profiler`` field is what
every command (resume, measure, fidelity, finalize, the shipped-LUT match) reads to know how a LUT was timed, and
eager and captured timings are different cost models (host launches vs GPU work), so one name each keeps a
resume, a comparison or a verdict from mixing them with no further rule.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from hwnas.profilers._common import BaseProfiler
from hwnas.profilers.base import Measurement, ProfilerConfigError, time_callable

PRECISIONS = ("fp32", "fp16")
GRAPH_WARMUP_CALLS = 3  # eager calls on a side stream before capture: cuDNN/cuBLAS handles and workspaces exist


def event_timer(fn: Callable[[], Any], calls: int) -> float:
    """ms per call of ``fn`` by CUDA events recorded on the current stream around ``calls`` calls.

    Both events are on the stream the work is queued on (graph replays launch on the current stream), so the
    interval is GPU time of exactly that work; ``end.synchronize()`` waits for the end event only."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls


def capture_graph(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, warmup: int = GRAPH_WARMUP_CALLS):
    """``fn(x)`` captured as a CUDA graph: (graph, static output). The rules of torch's CUDA-graph guide:

    1. warm up on a side stream that first waits for the current one (lazy initialisation, cuDNN algorithm
       choice and workspace allocation happen there, never inside the capture), then the current stream waits
       for the side stream;
    2. capture with ``torch.cuda.graph`` (it synchronises the device and captures on its own stream, into a
       private memory pool that keeps the static input/output alive);
    3. synchronise before the first replay. ``x`` is the static input: replays read it where it is.
    """
    dev = x.device
    side = torch.cuda.Stream(device=dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(max(1, warmup)):
            fn(x)
    torch.cuda.current_stream(dev).wait_stream(side)
    torch.cuda.synchronize(dev)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(x)
    torch.cuda.synchronize(dev)
    return graph, out


def check_options(precision: str, batch_size: Any) -> None:
    """A precision and batch size these profilers can time, else ProfilerConfigError (before any GPU work)."""
    if precision not in PRECISIONS:
        raise ProfilerConfigError(f"precision must be one of {list(PRECISIONS)} for the torch CUDA profilers, "
                                  f"got {precision!r} (int8 is timed by ort-cpu, ort-mobile)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProfilerConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def batched(input_shape: tuple[int, ...], batch_size: int) -> tuple[int, ...]:
    """``input_shape`` (batch 1, as descriptors and whole networks give it) at ``batch_size``."""
    if not input_shape or input_shape[0] not in (1, batch_size):
        raise ProfilerConfigError(f"input shape {tuple(input_shape)} does not start with batch 1 (or {batch_size}): "
                                  f"the profiler's batch_size sets the batch")
    return (batch_size, *input_shape[1:])


class TorchCUDAProfiler(BaseProfiler):
    """PyTorch eager on a CUDA GPU, each sample timed with CUDA events; fp32 or fp16 (``.half()``), batch N."""

    name = "torch-cuda"
    precisions = PRECISIONS
    mode = "eager"

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, device: int = 0,
                 precision: str = "fp32", batch_size: int = 1):
        super().__init__(threads, pin_cpu, policy)
        check_options(precision, batch_size)
        self.device = device
        self.precision = precision
        self.batch_size = batch_size

    def availability(self) -> str | None:
        if torch.version.cuda is None:
            return (f"torch {torch.__version__} sees no CUDA GPU: it is a CPU-only build (built with CUDA none); "
                    f"run on a machine with an NVIDIA GPU and a CUDA build of torch (scripts/gpu_device_run.sh "
                    f"says how to get one)")
        if not torch.cuda.is_available():
            return (f"torch {torch.__version__} sees no CUDA GPU (built with CUDA {torch.version.cuda}): no NVIDIA "
                    f"GPU or driver is visible to this process (nvidia-smi; CUDA_VISIBLE_DEVICES)")
        if self.device >= torch.cuda.device_count():
            return f"CUDA device {self.device} does not exist ({torch.cuda.device_count()} visible)"
        return None

    def _device(self) -> dict[str, Any]:
        if not torch.cuda.is_available():
            return {"device": "cuda (unavailable)"}
        p = torch.cuda.get_device_properties(self.device)
        return {"device": f"cuda:{self.device}", "gpu": p.name, "gpu_capability": f"{p.major}.{p.minor}",
                "gpu_memory_gib": round(p.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version()}

    def _mode(self) -> str:
        how = "module.half() and a half input" if self.precision == "fp16" else "fp32"
        return f"eager, eval, inference_mode, {how}, cudnn.benchmark=False"

    def settings(self) -> dict[str, Any]:
        # cudnn.allow_tf32 is torch's default (True): fp32 convolutions on Ampere and later run on TF32 tensor
        # cores unless a deployment turns it off; recorded, not changed
        return {**super().settings(), "mode": self._mode(), "timer": "cuda events", "precision": self.precision,
                "batch_size": self.batch_size, "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)}

    def _prepare(self) -> None:
        torch.set_num_threads(self.threads)
        torch.backends.cudnn.benchmark = False

    def _placed(self, module: Any, input_shape: tuple[int, ...]) -> tuple[Any, torch.Tensor]:
        """The module on the GPU at the profiler's precision, and a seeded input at its batch size."""
        dev = torch.device("cuda", self.device)
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        module = module.eval().to(dev, dtype=dtype)
        gen = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(*batched(input_shape, self.batch_size), device=dev, dtype=dtype, generator=gen)
        return module, x

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        module, x = self._placed(module, input_shape)
        with torch.inference_mode():
            return time_callable(lambda: module(x), self.policy, sync=torch.cuda.synchronize,
                                 sample_timer=event_timer)


class TorchCUDAGraphProfiler(TorchCUDAProfiler):
    """A block or a whole network captured as one CUDA graph, its replays timed with CUDA events: what a GPU
    deployment that cares about latency runs (CUDA graphs, ``torch.compile(mode="reduce-overhead")``,
    TensorRT), with no Python or kernel-launch time per layer."""

    name = "torch-cuda-graph"
    mode = "cuda-graph"

    def availability(self) -> str | None:
        reason = super().availability()
        if reason is None and not hasattr(torch.cuda, "CUDAGraph"):
            return f"torch {torch.__version__} has no torch.cuda.CUDAGraph (CUDA graphs need torch >= 1.10)"
        return reason

    def _mode(self) -> str:
        how = "module.half() and a half input" if self.precision == "fp16" else "fp32"
        return (f"cuda graph (warm-up {GRAPH_WARMUP_CALLS} calls on a side stream, torch.cuda.graph capture, "
                f"replays timed), eval, no_grad, {how}, cudnn.benchmark=False")

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        module, x = self._placed(module, input_shape)
        with torch.no_grad():  # torch's CUDA-graph recipe; graphs hold no autograd state
            graph, out = capture_graph(module, x)
            try:
                return time_callable(graph.replay, self.policy, sync=torch.cuda.synchronize,
                                     sample_timer=event_timer)
            finally:
                del graph, out  # the graph's private memory pool goes back to the caching allocator
