"""What the device is (its fingerprint) and the process settings a measuring worker applies (pinning).

Only the standard library, numpy and onnxruntime (OpenVINO and LiteRT when installed): this runs on boards and phones without torch. The field
names match hwnas's host fingerprint, so a LUT built through the agent compares with a later ``--device``
command field by field (``hwnas.latency.lut.fingerprint_diff``).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Optional

SIMD = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "fma", "asimd", "asimddp", "i8mm", "sve", "bf16")
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510",
             "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd4d": "Cortex-A715", "0xd0c": "Neoverse-N1",
             "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2"}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """x86: the 'model name'; Arm (no model name in /proc/cpuinfo): the core named from its part number."""
    lines = _cpuinfo()
    for line in lines:
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    parts = [line.split(":", 1)[1].strip().lower() for line in lines if line.lower().startswith("cpu part")]
    if parts:
        names = sorted({ARM_PARTS.get(p, f"Arm part {p}") for p in parts})
        return " + ".join(names)
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The SIMD features that change kernel choice (AVX2/AVX-512/VNNI on x86, dotprod/i8mm/SVE on Arm)."""
    for line in _cpuinfo():
        if line.lower().startswith(("flags", "features")):
            have = set(line.split(":", 1)[1].split())
            return " ".join(w for w in SIMD if w in have)
    return ""


def thermal() -> Optional[dict[str, float]]:
    """Temperatures (deg C) of the thermal zones the OS exposes (Linux, Android); None where there are none.
    A phone or board that throttles measures slower: this goes beside every measurement set."""
    base = Path("/sys/class/thermal")
    out: dict[str, float] = {}
    for zone in sorted(base.glob("thermal_zone*")) if base.is_dir() else []:
        try:
            kind = (zone / "type").read_text().strip()
            out[f"{zone.name}:{kind}"] = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return out or None


def fingerprint() -> dict[str, Any]:
    """The device's fingerprint: hardware, OS and runtime versions (settings are added by whoever measures)."""
    import numpy

    fp: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    try:
        import onnxruntime as ort

        fp["onnxruntime"] = ort.__version__
        fp["providers_available"] = ort.get_available_providers()
    except ImportError:
        fp["onnxruntime"] = None
        fp["providers_available"] = []
    fp["runtimes"] = runtimes()
    fp["thermal_c"] = thermal()
    return fp


def runtimes() -> dict[str, Any]:
    """The optional runtimes here beside onnxruntime (None: not installed), and what OpenVINO sees of the CPU. Kept
    apart from the top-level fields: a profiler lifts its own runtime's into its fingerprint, so an ORT LUT is not
    called foreign because the device later got OpenVINO."""
    from hwnas_agent import litert_runtime, openvino_runtime

    out: dict[str, Any] = {"openvino": openvino_runtime.version(), "ai_edge_litert": litert_runtime.version()}
    if out["openvino"] is not None:
        out.update(openvino_runtime.device_facts())
    return out


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def auto_pin(threads: int) -> Optional[int]:
    """One thread -> the last CPU this process may use (the OS tends to put stray work on CPU 0); else none.
    The same rule as hwnas's local profilers."""
    cpus = allowed_cpus()
    return cpus[-1] if threads == 1 and len(cpus) > 1 else None


def pin(cpu: Any, threads: int) -> str:
    """Pin this (measuring) process: ``cpu`` an index, "auto" (the rule above) or None. Returns what was done."""
    if cpu == "auto":
        cpu = auto_pin(threads)
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = allowed_cpus()
    if int(cpu) not in cpus:
        raise ValueError(f"cannot pin to CPU {cpu}: this device lets the agent use CPUs {cpus}")
    os.sched_setaffinity(0, {int(cpu)})
    return f"pinned to cpu {int(cpu)}"
