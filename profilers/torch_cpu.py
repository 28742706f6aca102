"""PyTorch eager on the CPU."""
from __future__ import annotations

from typing import Any

import torch

from hwnas.profilers._common import BaseProfiler
from hwnas.profilers._host import malloc_plan, tune_malloc
from hwnas.profilers.base import Measurement, time_callable


class TorchCPUProfiler(BaseProfiler):
    """PyTorch eager on the CPU: threads and pinning fixed while measuring, the allocator tuned as the host allows."""

    name = "torch-cpu"

    def availability(self) -> str | None:
        return None

    def _prepare(self) -> None:
        tune_malloc()
        torch.set_num_threads(self.threads)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "malloc": malloc_plan(), "mode": "eager, eval, inference_mode, fp32"}

    def _device(self) -> dict[str, Any]:
        return {"device": "cpu", "torch_threads": self.threads}

    def _measure(self, module: Any, input_shape: tuple[int, ...]) -> Measurement:
        module = module.eval().to("cpu")
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            return time_callable(lambda: module(x), self.policy)
