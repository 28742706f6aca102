"""Where training runs: ``--compute auto`` takes the GPU when torch sees one, else the CPU.

Training (supernet, short training) is the one place hwnas wants a GPU; latency is measured on the
device the LUT was built for, never here. On the CPU, training uses every core this process may
use: hwnas never pins or thread-limits a process that trains (only measuring workers are).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hwnas.evaluate.base import EvaluatorError

CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when torch sees one, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.
    A CUDA device that is not there is an input error saying what torch sees."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2] or "0"
        if not index.isdigit():
            raise EvaluatorError(f"device {spec!r} is not one of {CHOICES}")
        if not torch.cuda.is_available():
            raise EvaluatorError(f"device {spec!r}: torch {torch.__version__} sees no CUDA GPU (built with CUDA "
                                 f"{torch.version.cuda or 'none'}); use --compute cpu (an evaluator: device=cpu), "
                                 f"or auto to take a GPU only when there is one")
        if int(index) >= torch.cuda.device_count():
            raise EvaluatorError(f"device {spec!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                                 f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
        return torch.device(f"cuda:{index}")
    raise EvaluatorError(f"device {spec!r} is not one of {CHOICES}")


def deterministic(device: torch.device) -> None:
    """On a GPU, ask cuDNN for its deterministic kernels (and no autotuning): a seed then trains the same
    weights run after run, as it does on the CPU. Small convolutions lose little speed to it."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def cpu_layout(module: nn.Module, device: torch.device) -> nn.Module:
    """The weight layout a supernet trains and scores in on ``device``: channels-last (NHWC) on the CPU,
    the default (NCHW) elsewhere.

    oneDNN's convolution backward is slow in NCHW for the grouped and depthwise convolutions of MBConv
    blocks. On a 2-core AVX-512 EPYC (tools/bench_layout.py, docs/bench_layout.json) a training step of
    the demo supernet took 272 ms in NCHW and 157 ms channels-last (1.74x), the cell-demo's 238 and 176
    ms (1.35x); an evaluation forward 1.22x and 1.12x. Activations follow the weights' layout, so inputs
    need no conversion. Results differ from NCHW in float rounding (its batch norm is the less exact one: an
    end-to-end forward 4e-5 off float64 against 1e-6), so a seed trains other weights than in NCHW, but the
    same ones run after run; over 5 seeds the demo supernet ranked the reference archs no differently
    (docs/measurements.md). GPUs keep the default (not measured here). Extracted subnets (finalize's
    export) are built afresh and are always NCHW."""
    return module.to(memory_format=torch.channels_last if device.type == "cpu" else torch.contiguous_format)


def device_of(module: nn.Module) -> torch.device:
    """Where ``module``'s weights are (the CPU for a module without any)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_cpu(obj: Any) -> Any:
    """Tensors anywhere in ``obj`` (state dicts, optimizer state) moved to the CPU: checkpoints written on a
    GPU load on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = type(obj)((k, to_cpu(v)) for k, v in obj.items())  # an OrderedDict state dict stays one
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata  # type: ignore[attr-defined]  # module versions, read by load_state_dict
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
