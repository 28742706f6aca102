"""PyTorch eager on a CUDA GPU, timed with CUDA events."""
from __future__ import annotations

from typing import Any, Callable

import torch

from hwnas.profilers._common import BaseProfiler
from hwnas.profilers.base import Measurement, time_callable


class TorchCUDAProfiler(BaseProfiler):
    """PyTorch eager on a CUDA GPU, each sample timed with CUDA events."""

    name = "torch-cuda"

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy=None, device: int = 0):
        super().__init__(threads, pin_cpu, policy)
        self.device = device

    def availability(self) -> str | None:
        if not torch.cuda.is_available():
            return (f"torch {torch.__version__} sees no CUDA GPU "
                    f"(built with CUDA {torch.version.cuda or 'none'}); run on a machine with an NVIDIA GPU "
                    f"and a CUDA build of torch")
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

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "mode": "eager, eval, inference_mode, fp32, cudnn.benchmark=False",
                "timer": "cuda events"}

    def _prepare(self) -> None:
        torch.set_num_threads(self.threads)
        torch.backends.cudnn.benchmark = False

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        dev = torch.device("cuda", self.device)
        module = module.eval().to(dev)
        x = torch.randn(*input_shape, device=dev)

        def event_timer(fn: Callable[[], Any], calls: int) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / calls

        with torch.inference_mode():
            return time_callable(lambda: module(x), self.policy, sync=torch.cuda.synchronize,
                                 sample_timer=event_timer)
